"""Results write path, leaner: no foreign keys to organisations/users on the hot tables

Every accepted write inserts into ``result_ops`` (one row per op), ``result_heads``,
``audit_entries`` and ``idempotency_records``. Each of their foreign keys to
``organisations`` and ``users`` ran a ``SELECT ... FOR KEY SHARE`` on the *same*
organisation row and the *same* user row for every row written (about seven plus six per
write); concurrent writers then share those row locks through MultiXacts and WAL-log
every lock. Dropped here (PostgreSQL and SQLite, models in step):

- ``result_ops.organisation_id``, ``result_heads.organisation_id``: a denormalised copy
  of the session's organisation, written only by the write path from the session row it
  has just locked; ``test_sessions.organisation_id`` keeps its foreign key, and
  ``result_ops.session_id`` / ``result_heads.session_id`` keep theirs (with ON DELETE
  CASCADE), so every row still belongs to an existing session of that organisation.
- ``result_ops.received_by`` (was ON DELETE SET NULL): who sent the op, a record like
  ``audit_entries.actor_id`` (which never had a foreign key). Nothing deletes users (they
  are deactivated), so SET NULL never fired; an id kept after a deletion would still say
  who sent the op.
- ``audit_entries.organisation_id``: the trail is append-only and written only with the
  organisation of the authenticated principal; nothing deletes organisations.
- ``idempotency_records.organisation_id`` and ``.user_id`` (was ON DELETE CASCADE):
  written only with the authenticated principal's ids. Nothing deletes users or
  organisations; if one ever were, its records would simply expire and be purged by
  ``maintenance.py`` (``expires_at``) instead of going at once.

No index is dropped: ``result_ops`` has its primary key (log reads by version) and
``(session_id, op_id)`` (the dedupe probe); ``audit_entries`` the list endpoint's three
keyset indexes and the sealer's ``(txid, seq)``; ``idempotency_records`` the lookup key
and ``expires_at`` (the purge).

On PostgreSQL ``firemode_results_write`` is redefined with the same signature and result
columns and the same behaviour, in fewer statements: after the idempotency look-up and
the session lock, one statement reads the head, expands the ops once, drops known op ids
(an index probe per op instead of reading the session's whole log), checks the bounds,
and writes the log, the per-path state, the head, the audit entries (one INSERT) and the
idempotency record only when nothing refuses; the document is built from the state it
read and the rows it writes instead of being read again. Downgrade restores 0003's
function and the foreign keys.

Revision ID: 0009_results_write_lean
Revises: 0008_audit
Create Date: 2026-12-03 09:00:00
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "0009_results_write_lean"
down_revision: str | None = "0008_audit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column, referred table, ondelete) of every foreign key dropped here.
FOREIGN_KEYS = (
    ("result_ops", "organisation_id", "organisations", None),
    ("result_ops", "received_by", "users", "SET NULL"),
    ("result_heads", "organisation_id", "organisations", None),
    ("audit_entries", "organisation_id", "organisations", None),
    ("idempotency_records", "organisation_id", "organisations", None),
    ("idempotency_records", "user_id", "users", "CASCADE"),
)


def _name(table: str, column: str, referred: str) -> str:
    return f"fk_{table}_{column}_{referred}"


def _tables() -> dict[str, list[tuple[str, str, str | None]]]:
    tables: dict[str, list[tuple[str, str, str | None]]] = {}
    for table, column, referred, ondelete in FOREIGN_KEYS:
        tables.setdefault(table, []).append((column, referred, ondelete))
    return tables


def _previous_function() -> str:
    """0003's ``WRITE_FUNCTION`` (its module name starts with a digit: loaded by path)."""
    path = Path(__file__).with_name("0003_results_state.py")
    spec = importlib.util.spec_from_file_location("_firemode_0003_results_state", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.WRITE_FUNCTION)


def _restore_sqlite_audit_triggers() -> None:
    """Batch mode rebuilds ``audit_entries`` on SQLite (copy, drop, rename), which drops
    its append-only triggers (migration 0008_audit): create them again."""
    if op.get_bind().dialect.name != "sqlite":
        return
    for verb in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER IF NOT EXISTS audit_entries_no_{verb.lower()} BEFORE {verb} "
            "ON audit_entries BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END"
        )


def upgrade() -> None:
    for table, keys in _tables().items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column, referred, _ondelete in keys:
                batch_op.drop_constraint(op.f(_name(table, column, referred)), type_="foreignkey")
    _restore_sqlite_audit_triggers()
    if op.get_bind().dialect.name == "postgresql":
        # Dropped first: its document column is now json (was jsonb).
        op.execute(f"DROP FUNCTION firemode_results_write({_SIGNATURE})")
        op.execute(WRITE_FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION firemode_results_write({_SIGNATURE})")
        op.execute(_previous_function())
    for table, keys in _tables().items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column, referred, ondelete in keys:
                batch_op.create_foreign_key(
                    op.f(_name(table, column, referred)),
                    referred,
                    [column],
                    ["id"],
                    ondelete=ondelete,
                )
    _restore_sqlite_audit_triggers()


# The write path of results sync on PostgreSQL (see docs/api/results-engine.md), same
# parameters, result columns and behaviour as 0003's (but the document rows come as json,
# cheaper to build than jsonb, where 0003 sent jsonb): claim the idempotency key, lock the
# session (creating it as a draft), then one statement that reads the head, drops known
# ops, checks the bounds and, only if nothing refuses, appends to the log, folds into the
# per-path state, bumps the head, writes the audit entries and stores the response.
# Every refusal writes nothing (a draft created here is removed).
# Order keys compare as bytes (COLLATE "C"): ts U+001F device U+001F op_id.
# p_ops: [[op, path, value, ts, device_id, op_id, value_bytes, server_stamped], ...].
# p_audit: who wrote the batch, for its audit entries ({actor_type, actor_id,
# transaction_id, device_id}; NULL: none).
_SIGNATURE = (
    "uuid, uuid, uuid, text, text, text, text, bigint, jsonb, boolean, timestamptz,"
    " timestamptz, jsonb, text, bigint, bigint, bigint, jsonb"
)
WRITE_FUNCTION = r"""
CREATE OR REPLACE FUNCTION firemode_results_write(
    p_org uuid, p_user uuid, p_session uuid,
    p_key text, p_method text, p_path text, p_fingerprint text, p_lock bigint,
    p_headers jsonb, p_want_document boolean, p_expires timestamptz, p_now timestamptz,
    p_ops jsonb, p_server_ts text,
    p_max_ops bigint, p_max_state_bytes bigint, p_max_log_bytes bigint, p_audit jsonb
) RETURNS TABLE (
    o_outcome text, o_version bigint, o_applied int, o_duplicates int, o_body bytea,
    o_status int, o_headers jsonb, o_doc_version bigint, o_encoding text, o_detail bigint,
    o_last_ts text, o_rows json
) LANGUAGE plpgsql AS $fn$
DECLARE
    v_rec record;
    v_status text;
    v_created boolean := false;
    v_outcome text;
    w record;
BEGIN
    IF p_key IS NOT NULL THEN
        -- Whoever holds the key's lock is running its first request; the record is read
        -- after trying the lock so that it is never older than the lock.
        v_outcome := CASE WHEN pg_try_advisory_xact_lock(p_lock) THEN NULL ELSE 'in_flight' END;
        SELECT r.id, r.state, r.expires_at, r.request_fingerprint, r.response_status,
               r.response_body, r.response_headers, r.response_encoding,
               r.response_document_version
          INTO v_rec
          FROM idempotency_records r
         WHERE r.organisation_id = p_org AND r.user_id = p_user AND r.method = p_method
           AND r.path = p_path AND r.idempotency_key = p_key;
        IF FOUND AND v_rec.expires_at <= p_now AND v_outcome IS NULL THEN
            DELETE FROM idempotency_records WHERE id = v_rec.id;
        ELSIF FOUND AND v_rec.expires_at > p_now AND v_rec.state = 'completed' THEN
            o_outcome := CASE WHEN v_rec.request_fingerprint = p_fingerprint
                              THEN 'replay' ELSE 'mismatch' END;
            o_body := v_rec.response_body;
            o_status := v_rec.response_status;
            o_headers := v_rec.response_headers;
            o_doc_version := v_rec.response_document_version;
            o_encoding := v_rec.response_encoding;
            RETURN NEXT;
            RETURN;
        END IF;
        IF v_outcome IS NOT NULL THEN
            o_outcome := v_outcome;
            RETURN NEXT;
            RETURN;
        END IF;
    END IF;

    SELECT s.status INTO v_status FROM test_sessions s
     WHERE s.id = p_session AND s.organisation_id = p_org FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        INSERT INTO test_sessions (id, organisation_id, building_id, session_name, frequency,
                                   scheduled_for, status, created_by, created_at, updated_at)
        VALUES (p_session, p_org, NULL, '', NULL, NULL, 'draft', p_user, p_now, p_now)
        ON CONFLICT (id) DO NOTHING;
        v_created := FOUND;
        SELECT s.status INTO v_status FROM test_sessions s
         WHERE s.id = p_session AND s.organisation_id = p_org FOR NO KEY UPDATE;
        IF NOT FOUND THEN
            v_outcome := 'not_found';
        END IF;
    END IF;
    IF v_outcome IS NULL AND v_status = 'completed' THEN
        v_outcome := 'completed';
    END IF;
    IF v_outcome IS NOT NULL THEN
        IF v_created THEN
            DELETE FROM test_sessions WHERE id = p_session;
        END IF;
        o_outcome := v_outcome;
        o_version := 0;
        RETURN NEXT;
        RETURN;
    END IF;

    -- One statement (the session is locked, so its snapshot sees every earlier write):
    -- read the head, expand the ops once, check, and write only if nothing refuses.
    WITH h AS (
        SELECT coalesce(h.version, 0) AS version, h.last_ts,
               coalesce(h.state_bytes, 0) AS state_bytes, coalesce(h.log_bytes, 0) AS log_bytes
          FROM (VALUES (1)) AS one(x)
          LEFT JOIN result_heads h ON h.session_id = p_session
    ), e AS (
        SELECT t.e->>0 AS op, t.e->>1 AS path, t.e->2 AS value, t.e->>3 AS ts,
               t.e->>4 AS device_id, t.e->>5 AS op_id, (t.e->>6)::bigint AS vb,
               (t.e->>7)::boolean AS stamped, t.ord
          FROM jsonb_array_elements(p_ops) WITH ORDINALITY AS t(e, ord)
    ), f AS (
        -- The fresh ops: the first of each op_id, unless the log has it.
        SELECT d.*, row_number() OVER (ORDER BY d.ord) AS n,
               (d.ts || chr(31) || d.device_id || chr(31) || d.op_id) COLLATE "C" AS k
          FROM (SELECT DISTINCT ON (e.op_id) e.* FROM e ORDER BY e.op_id, e.ord) d
         WHERE (SELECT true FROM result_ops o
                 WHERE o.session_id = p_session AND o.op_id = d.op_id) IS NULL
    ), g AS (
        -- Per path the fresh ops touch: their newest set (key, value, size), newest delete.
        SELECT f.path,
               max(f.k) FILTER (WHERE f.op = 'set') AS sk,
               (array_agg(f.value ORDER BY f.k DESC) FILTER (WHERE f.op = 'set'))[1] AS sv,
               (array_agg(f.vb ORDER BY f.k DESC) FILTER (WHERE f.op = 'set'))[1] AS sb,
               max(f.k) FILTER (WHERE f.op = 'delete') AS dk
          FROM f WHERE f.op IN ('set', 'delete') GROUP BY f.path
    ), m AS (
        SELECT g.path, old.path AS old_path,
               old.set_key AS osk, old.set_value AS osv, old.set_bytes AS osb,
               old.del_key AS odk, g.sk, g.sv, g.sb, g.dk,
               g.sk IS NOT NULL AND (old.set_key IS NULL OR g.sk > old.set_key COLLATE "C")
                   AS take_set
          FROM g LEFT JOIN result_paths old
            ON old.session_id = p_session AND old.path = g.path
    ), r0 AS (
        SELECT m.path,
               CASE WHEN m.old_path IS NULL THEN 0
                    ELSE octet_length(m.old_path)
                         + CASE WHEN m.osk IS NULL THEN 0 ELSE m.osb END
               END AS old_bytes,
               CASE WHEN m.take_set THEN m.sk ELSE m.osk END AS set_key,
               CASE WHEN m.take_set THEN m.sv ELSE m.osv END AS set_value,
               CASE WHEN m.take_set THEN m.sb ELSE coalesce(m.osb, 0) END AS set_bytes,
               greatest(m.dk COLLATE "C", m.odk) AS del_key
          FROM m
    ), r AS (
        -- The new state of each path the fresh ops touch: newest set, newer delete.
        SELECT r0.path, r0.set_key, r0.set_value, r0.set_bytes,
               CASE WHEN r0.set_key IS NOT NULL AND r0.del_key <= r0.set_key COLLATE "C"
                    THEN NULL ELSE r0.del_key END AS del_key,
               octet_length(r0.path)
               + CASE WHEN r0.set_key IS NULL THEN 0 ELSE r0.set_bytes END
               - r0.old_bytes AS delta
          FROM r0
    ), c AS (
        SELECT h.version, h.last_ts, h.state_bytes, h.log_bytes, a.applied, a.add_log,
               a.max_ts, a.op_ids, (SELECT coalesce(sum(r.delta), 0) FROM r) AS delta,
               h.last_ts IS NOT NULL AND EXISTS (
                   SELECT 1 FROM e WHERE e.stamped AND e.ts COLLATE "C" <= h.last_ts COLLATE "C"
               ) AS restamp
          FROM h, (SELECT count(*) AS applied,
                          coalesce(sum(octet_length(f.path) + f.vb), 0) AS add_log,
                          max(f.ts COLLATE "C") AS max_ts,
                          jsonb_agg(f.op_id ORDER BY f.ord) AS op_ids
                     FROM f) AS a
    ), o AS (
        SELECT c.*, c.version + c.applied AS new_version,
               jsonb_array_length(p_ops) - c.applied AS duplicates,
               CASE WHEN c.restamp THEN 'restamp'
                    WHEN c.applied > 0 AND c.version + c.applied > p_max_ops
                        THEN 'too_many_ops'
                    WHEN c.applied > 0 AND c.log_bytes + c.add_log > p_max_log_bytes
                        THEN 'session_full'
                    WHEN c.applied > 0 AND c.state_bytes + c.delta > p_max_state_bytes
                        THEN 'too_large'
               END AS refusal,
               CASE WHEN c.restamp THEN NULL
                    WHEN c.applied > 0 AND c.version + c.applied > p_max_ops
                        THEN c.version + c.applied
                    WHEN c.applied > 0 AND c.log_bytes + c.add_log > p_max_log_bytes
                        THEN c.log_bytes + c.add_log
                    WHEN c.applied > 0 AND c.state_bytes + c.delta > p_max_state_bytes
                        THEN c.state_bytes + c.delta
               END AS detail,
               convert_to(format(
                   '{"session_id":"%s","version":%s,"applied":%s,"duplicates":%s,"server_ts":"%s"}',
                   p_session, c.version + c.applied, c.applied,
                   jsonb_array_length(p_ops) - c.applied, p_server_ts), 'UTF8') AS body
          FROM c
    ), w_ops AS (
        INSERT INTO result_ops (session_id, version, organisation_id, op, path, value, ts,
                                device_id, op_id, received_by, created_at)
        SELECT p_session, o.version + f.n, p_org, f.op, f.path,
               CASE WHEN f.op = 'set' THEN f.value ELSE 'null'::jsonb END,
               f.ts, f.device_id, f.op_id, p_user, p_now
          FROM o, f WHERE o.refusal IS NULL
    ), w_paths AS (
        INSERT INTO result_paths (session_id, path, set_key, set_value, set_bytes, del_key)
        SELECT p_session, r.path, r.set_key, r.set_value, r.set_bytes, r.del_key
          FROM o, r WHERE o.refusal IS NULL
        ON CONFLICT (session_id, path) DO UPDATE
           SET set_key = EXCLUDED.set_key, set_value = EXCLUDED.set_value,
               set_bytes = EXCLUDED.set_bytes, del_key = EXCLUDED.del_key
    ), w_head AS (
        INSERT INTO result_heads (session_id, organisation_id, version, last_ts, state_bytes,
                                  log_bytes, updated_at)
        SELECT p_session, p_org, o.new_version,
               CASE WHEN o.last_ts IS NULL OR o.max_ts > o.last_ts COLLATE "C"
                    THEN o.max_ts ELSE o.last_ts END,
               o.state_bytes + o.delta, o.log_bytes + o.add_log, p_now
          FROM o WHERE o.refusal IS NULL AND o.applied > 0
        ON CONFLICT (session_id) DO UPDATE
           SET version = EXCLUDED.version, last_ts = EXCLUDED.last_ts,
               state_bytes = EXCLUDED.state_bytes, log_bytes = EXCLUDED.log_bytes,
               updated_at = EXCLUDED.updated_at
    ), w_audit AS (
        -- The audit trail (table audit_entries, migration 0008_audit): a session created
        -- here, then the accepted batch.
        INSERT INTO audit_entries (id, organisation_id, actor_type, actor_id, action,
            subject_type, subject_id, payload, transaction_id, created_at)
        SELECT gen_random_uuid(), p_org, p_audit->>'actor_type',
               (p_audit->>'actor_id')::uuid, x.action, 'test_session', p_session::text,
               x.payload, p_audit->>'transaction_id', p_now
          FROM o CROSS JOIN LATERAL (VALUES
                (1, 'test_session.created',
                 jsonb_build_object('status', 'draft', 'created_by_results_sync', true)),
                (2, 'results.accepted',
                 jsonb_build_object('op_ids', o.op_ids, 'version', o.new_version,
                     'applied', o.applied, 'duplicates', o.duplicates,
                     'device_id', p_audit->'device_id'))
               ) AS x(i, action, payload)
         WHERE o.refusal IS NULL AND o.applied > 0 AND p_audit IS NOT NULL
           AND (x.i = 2 OR v_created)
         ORDER BY x.i
    ), w_key AS (
        INSERT INTO idempotency_records (id, organisation_id, user_id, method, path,
            idempotency_key, request_fingerprint, state, response_status, response_body,
            response_headers, response_encoding, response_document_version, expires_at,
            created_at, updated_at)
        SELECT gen_random_uuid(), p_org, p_user, p_method, p_path, p_key, p_fingerprint,
               'completed', 200, o.body, p_headers, NULL,
               CASE WHEN p_want_document THEN o.new_version END, p_expires, p_now, p_now
          FROM o WHERE o.refusal IS NULL AND p_key IS NOT NULL
    )
    SELECT o.refusal, o.version, o.new_version, o.applied, o.duplicates, o.detail,
           o.last_ts, o.body,
           CASE WHEN p_want_document AND o.refusal IS NULL THEN (
               -- The document after the write: the touched paths' new state and the
               -- rest as stored (this statement's snapshot does not see its own writes).
               -- json, not jsonb: the rows are only sent, and json is built as text.
               SELECT coalesce(json_agg(json_build_array(x.path, x.set_key, x.set_value,
                                                         x.del_key)), '[]'::json)
                 FROM (SELECT r.path, r.set_key, r.set_value, r.del_key FROM r
                       UNION ALL
                       SELECT p.path, p.set_key, p.set_value, p.del_key
                         FROM result_paths p
                        WHERE p.session_id = p_session
                          AND NOT EXISTS (SELECT 1 FROM r WHERE r.path = p.path)) AS x
           ) END AS doc
      INTO w
      FROM o;

    IF w.refusal IS NOT NULL THEN
        IF v_created THEN
            DELETE FROM test_sessions WHERE id = p_session;
        END IF;
        o_outcome := w.refusal;
        o_version := w.version;
        o_detail := w.detail;
        o_last_ts := w.last_ts;
        RETURN NEXT;
        RETURN;
    END IF;
    o_outcome := 'ok';
    o_version := w.new_version;
    o_applied := w.applied;
    o_duplicates := w.duplicates;
    o_body := w.body;
    o_status := 200;
    o_headers := p_headers;
    o_rows := w.doc;
    RETURN NEXT;
END
$fn$;
"""
