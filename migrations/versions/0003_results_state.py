"""Results in their own tables: per-session heads and per-path state derived from the log

Moves each session's results out of ``test_sessions`` (the materialised document and its
counters) into ``result_heads`` (version, largest ts, byte counts) and ``result_paths``
(per path: the newest set and a newer delete; see docs/api/results-engine.md). The op
log ``result_ops`` is untouched: the state of every existing session is derived from it
here. Adds two columns to ``idempotency_records`` (compressed bodies, responses stored by
reference). On PostgreSQL, creates ``firemode_results_write``, the one-statement write
path of results sync. Downgrade rebuilds the documents from the log.

Revision ID: 0003_results_state
Revises: 0002
Create Date: 2026-12-02 18:30:00
"""

import json
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import src.app.core.database

revision: str = "0003_results_state"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEP = "\x1f"


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


_OPS = sa.table(
    "result_ops",
    sa.column("session_id", sa.Uuid()),
    sa.column("version", sa.BigInteger()),
    sa.column("organisation_id", sa.Uuid()),
    sa.column("op", sa.String()),
    sa.column("path", sa.Text()),
    sa.column("value", src.app.core.database.JSONType),
    sa.column("ts", sa.String()),
    sa.column("device_id", sa.String()),
    sa.column("op_id", sa.String()),
)


def _log(bind: sa.Connection) -> Iterator[tuple[Any, list[Any]]]:
    """Each session's ops, in version order (the log is read session by session)."""
    c = _OPS.c
    sessions = list(bind.execute(sa.select(c.session_id).distinct()).scalars())
    for session_id in sessions:
        rows = bind.execute(
            sa.select(c.organisation_id, c.op, c.path, c.value, c.ts, c.device_id, c.op_id)
            .where(c.session_id == session_id)
            .order_by(c.version)
        ).all()
        yield session_id, list(rows)


def upgrade() -> None:
    op.create_table(
        "result_heads",
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("last_ts", sa.String(length=29), nullable=True),
        sa.Column("state_bytes", sa.BigInteger(), nullable=False),
        sa.Column("log_bytes", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", src.app.core.database.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_result_heads_organisation_id_organisations"),
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["test_sessions.id"],
            name=op.f("fk_result_heads_session_id_test_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_result_heads")),
    )
    op.create_table(
        "result_paths",
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("set_key", sa.String(length=400), nullable=True),
        sa.Column("set_value", src.app.core.database.JSONType, nullable=True),
        sa.Column("set_bytes", sa.Integer(), nullable=False),
        sa.Column("del_key", sa.String(length=400), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["test_sessions.id"],
            name=op.f("fk_result_paths_session_id_test_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", "path", name=op.f("pk_result_paths")),
    )
    with op.batch_alter_table("idempotency_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("response_encoding", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("response_document_version", sa.BigInteger(), nullable=True))

    _carry_over(op.get_bind())

    # ALTER TABLE ... DROP COLUMN on both databases (SQLite >= 3.35). Not batch mode: on
    # SQLite it copies and drops the table, and dropping test_sessions with foreign keys
    # on would cascade into the op log and the state just derived.
    for column in ("results_size_bytes", "results_last_key", "results_version", "results_document"):
        op.execute(f"ALTER TABLE test_sessions DROP COLUMN {column}")

    if op.get_bind().dialect.name == "postgresql":
        op.execute(WRITE_FUNCTION)


def _carry_over(bind: sa.Connection) -> None:
    """Derive heads and per-path state from the log (written independently of the app's
    code, so this migration keeps meaning what it meant when it was written)."""
    heads = sa.table(
        "result_heads",
        sa.column("session_id", sa.Uuid()),
        sa.column("organisation_id", sa.Uuid()),
        sa.column("version", sa.BigInteger()),
        sa.column("last_ts", sa.String()),
        sa.column("state_bytes", sa.BigInteger()),
        sa.column("log_bytes", sa.BigInteger()),
        sa.column("updated_at", src.app.core.database.UTCDateTime()),
    )
    paths = sa.table(
        "result_paths",
        sa.column("session_id", sa.Uuid()),
        sa.column("path", sa.Text()),
        sa.column("set_key", sa.String()),
        sa.column("set_value", src.app.core.database.JSONType),
        sa.column("set_bytes", sa.Integer()),
        sa.column("del_key", sa.String()),
    )
    now = bind.execute(sa.text("SELECT CURRENT_TIMESTAMP")).scalar_one()
    if isinstance(now, str):  # SQLite answers text
        from datetime import UTC, datetime

        now = datetime.fromisoformat(now).replace(tzinfo=UTC)
    for session_id, rows in _log(bind):
        sets: dict[str, tuple[str, Any, int]] = {}
        deletes: dict[str, str] = {}
        log_bytes = 0
        for _org, kind, path, raw, ts, device_id, op_id in rows:
            key = SEP.join((ts, device_id, op_id))
            value = raw
            size = len(_compact(value).encode()) if kind == "set" else 0
            log_bytes += len(path.encode()) + size
            if kind == "set":
                if path not in sets or key > sets[path][0]:
                    sets[path] = (key, value, size)
            elif path not in deletes or key > deletes[path]:
                deletes[path] = key
        state_rows = []
        state_bytes = 0
        for path in sets.keys() | deletes.keys():
            set_key, value, size = sets.get(path, (None, None, 0))
            del_key = deletes.get(path)
            if del_key is not None and set_key is not None and del_key < set_key:
                del_key = None
            state_bytes += len(path.encode()) + (size if set_key is not None else 0)
            state_rows.append(
                {
                    "session_id": session_id,
                    "path": path,
                    "set_key": set_key,
                    "set_value": value,
                    "set_bytes": size,
                    "del_key": del_key,
                }
            )
        bind.execute(
            heads.insert(),
            {
                "session_id": session_id,
                "organisation_id": rows[0][0],
                "version": len(rows),
                "last_ts": max(r[4] for r in rows),
                "state_bytes": state_bytes,
                "log_bytes": log_bytes,
                "updated_at": now,
            },
        )
        if state_rows:
            bind.execute(paths.insert(), state_rows)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS firemode_results_write")
    with op.batch_alter_table("test_sessions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "results_document",
                src.app.core.database.JSONType,
                nullable=False,
                server_default="{}",
            )
        )
        batch_op.add_column(
            sa.Column("results_version", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("results_last_key", sa.String(length=400), nullable=True))
        batch_op.add_column(
            sa.Column("results_size_bytes", sa.Integer(), nullable=False, server_default="2")
        )
    sessions = sa.table(
        "test_sessions",
        sa.column("id", sa.Uuid()),
        sa.column("results_document", src.app.core.database.JSONType),
        sa.column("results_version", sa.BigInteger()),
        sa.column("results_last_key", sa.String()),
        sa.column("results_size_bytes", sa.Integer()),
    )
    for session_id, rows in _log(bind):
        ordered = sorted(rows, key=lambda r: (r[4], r[5], r[6]))
        document: dict[str, Any] = {}
        for _org, kind, path, raw, *_rest in ordered:
            _apply(document, kind, path, raw)
        last = ordered[-1]
        bind.execute(
            sessions.update().where(sessions.c.id == session_id),
            {
                "results_document": document,
                "results_version": len(rows),
                "results_last_key": SEP.join((last[4], last[5], last[6])),
                "results_size_bytes": len(_compact(document).encode()),
            },
        )
    with op.batch_alter_table("idempotency_records", schema=None) as batch_op:
        batch_op.drop_column("response_document_version")
        batch_op.drop_column("response_encoding")
    op.drop_table("result_paths")
    op.drop_table("result_heads")


def _apply(document: dict[str, Any], kind: str, path: str, value: Any) -> None:
    *parents, last = [s.replace("~1", "/").replace("~0", "~") for s in path[1:].split("/")]
    node = document
    for segment in parents:
        child = node.get(segment)
        if not isinstance(child, dict):
            if kind != "set":
                return
            child = {}
            node[segment] = child
        node = child
    if kind == "set":
        node[last] = value
    else:
        node.pop(last, None)


# The write path of results sync on PostgreSQL, one statement per request: claim the
# idempotency key, lock the session (creating it as a draft), drop known ops, check the
# bounds, append to the log, fold into the per-path state, bump the head, store the
# response. Every refusal returns before writing (a draft created here is removed).
# Order keys compare as bytes (COLLATE "C"): ts U+001F device U+001F op_id.
# p_ops: [[op, path, value, ts, device_id, op_id, value_bytes, server_stamped], ...].
# p_audit: who wrote the batch, for its audit entries ({actor_type, actor_id,
# transaction_id, device_id}; NULL: none); see docs/api/results-engine.md.
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
    o_last_ts text, o_rows jsonb
) LANGUAGE plpgsql AS $fn$
DECLARE
    v_rec record;
    v_status text;
    v_created boolean := false;
    v_version bigint := 0;
    v_last_ts text;
    v_state_bytes bigint := 0;
    v_log_bytes bigint := 0;
    v_fresh jsonb;
    v_applied int;
    v_duplicates int;
    v_rows jsonb;
    v_delta bigint;
    v_add_log bigint;
    v_max_ts text;
    v_body bytea;
    v_outcome text;
    v_detail bigint;
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
            v_outcome := CASE WHEN v_rec.request_fingerprint = p_fingerprint
                              THEN 'replay' ELSE 'mismatch' END;
            RETURN QUERY SELECT v_outcome, NULL::bigint, NULL::int, NULL::int,
                v_rec.response_body, v_rec.response_status, v_rec.response_headers,
                v_rec.response_document_version, v_rec.response_encoding::text, NULL::bigint,
                NULL::text, NULL::jsonb;
            RETURN;
        END IF;
        IF v_outcome IS NOT NULL THEN
            RETURN QUERY SELECT v_outcome, NULL::bigint, NULL::int, NULL::int,
                NULL::bytea, NULL::int, NULL::jsonb, NULL::bigint, NULL::text, NULL::bigint,
                NULL::text, NULL::jsonb;
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

    IF v_outcome IS NULL THEN
        SELECT h.version, h.last_ts, h.state_bytes, h.log_bytes
          INTO v_version, v_last_ts, v_state_bytes, v_log_bytes
          FROM result_heads h WHERE h.session_id = p_session;
        IF NOT FOUND THEN
            v_version := 0; v_state_bytes := 0; v_log_bytes := 0;
        END IF;
        -- Server-stamped ops must sort after the whole log: the caller restamps.
        IF v_last_ts IS NOT NULL AND EXISTS (
            SELECT 1 FROM jsonb_array_elements(p_ops) e
             WHERE (e->>7)::boolean AND (e->>3) COLLATE "C" <= v_last_ts COLLATE "C"
        ) THEN
            v_outcome := 'restamp';
        END IF;
    END IF;

    IF v_outcome IS NULL THEN
        SELECT coalesce(jsonb_agg(f.e ORDER BY f.ord), '[]'::jsonb), count(*)
          INTO v_fresh, v_applied
          FROM (
              SELECT DISTINCT ON (t.e->>5) t.e, t.ord
                FROM jsonb_array_elements(p_ops) WITH ORDINALITY AS t(e, ord)
               ORDER BY t.e->>5, t.ord
          ) f
         WHERE NOT EXISTS (
              SELECT 1 FROM result_ops o
               WHERE o.session_id = p_session AND o.op_id = f.e->>5
         );
        v_duplicates := jsonb_array_length(p_ops) - v_applied;
        IF v_applied > 0 AND v_version + v_applied > p_max_ops THEN
            v_outcome := 'too_many_ops';
            v_detail := v_version + v_applied;
        END IF;
    END IF;

    IF v_outcome IS NULL AND v_applied > 0 THEN
        SELECT coalesce(sum(octet_length(e->>1) + (e->>6)::bigint), 0),
               max((e->>3) COLLATE "C")
          INTO v_add_log, v_max_ts
          FROM jsonb_array_elements(v_fresh) e;
        IF v_log_bytes + v_add_log > p_max_log_bytes THEN
            v_outcome := 'session_full';
            v_detail := v_log_bytes + v_add_log;
        END IF;
    END IF;

    IF v_outcome IS NULL AND v_applied > 0 THEN
        WITH f AS (
            SELECT e->>0 AS op, e->>1 AS path, e->2 AS value, (e->>6)::int AS vb,
                   ((e->>3) || chr(31) || (e->>4) || chr(31) || (e->>5)) COLLATE "C" AS k
              FROM jsonb_array_elements(v_fresh) e
        ), s AS (
            SELECT DISTINCT ON (path) path, k, value, vb FROM f WHERE op = 'set'
             ORDER BY path, k DESC
        ), d AS (
            SELECT path, max(k) AS k FROM f WHERE op = 'delete' GROUP BY path
        ), b AS (
            SELECT coalesce(s.path, d.path) AS path, s.k AS sk, s.value AS sv, s.vb AS sb,
                   d.k AS dk
              FROM s FULL JOIN d ON d.path = s.path
        ), n AS (
            SELECT b.path,
                   CASE WHEN old.path IS NULL THEN 0
                        ELSE octet_length(old.path)
                             + CASE WHEN old.set_key IS NULL THEN 0 ELSE old.set_bytes END
                   END AS old_bytes,
                   CASE WHEN b.sk IS NOT NULL
                         AND (old.set_key IS NULL OR b.sk > old.set_key COLLATE "C")
                        THEN true ELSE false END AS take_set,
                   b.sk, b.sv, b.sb, b.dk,
                   old.set_key AS osk, old.set_value AS osv, old.set_bytes AS osb,
                   old.del_key AS odk
              FROM b LEFT JOIN result_paths old
                ON old.session_id = p_session AND old.path = b.path
        ), m AS (
            SELECT path, old_bytes,
                   CASE WHEN take_set THEN sk ELSE osk END AS set_key,
                   CASE WHEN take_set THEN sv ELSE osv END AS set_value,
                   CASE WHEN take_set THEN sb ELSE coalesce(osb, 0) END AS set_bytes,
                   greatest(dk COLLATE "C", odk) AS del_key
              FROM n
        )
        SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'path', path, 'set_key', set_key, 'set_value', set_value,
                   'set_bytes', set_bytes,
                   'del_key', CASE WHEN set_key IS NOT NULL
                                    AND del_key <= set_key COLLATE "C"
                                   THEN NULL ELSE del_key END)), '[]'::jsonb),
               coalesce(sum(octet_length(path)
                            + CASE WHEN set_key IS NULL THEN 0 ELSE set_bytes END
                            - old_bytes), 0)
          INTO v_rows, v_delta
          FROM m;
        IF v_state_bytes + v_delta > p_max_state_bytes THEN
            v_outcome := 'too_large';
            v_detail := v_state_bytes + v_delta;
        END IF;
    END IF;

    IF v_outcome IS NOT NULL THEN
        IF v_created THEN
            DELETE FROM test_sessions WHERE id = p_session;
        END IF;
        RETURN QUERY SELECT v_outcome, v_version, NULL::int, NULL::int, NULL::bytea,
            NULL::int, NULL::jsonb, NULL::bigint, NULL::text, v_detail, v_last_ts,
            NULL::jsonb;
        RETURN;
    END IF;

    IF v_applied > 0 THEN
        INSERT INTO result_ops (session_id, version, organisation_id, op, path, value, ts,
                                device_id, op_id, received_by, created_at)
        SELECT p_session, v_version + t.ord, p_org, t.e->>0, t.e->>1,
               CASE WHEN t.e->>0 = 'set' THEN t.e->2 ELSE 'null'::jsonb END,
               t.e->>3, t.e->>4, t.e->>5, p_user, p_now
          FROM jsonb_array_elements(v_fresh) WITH ORDINALITY AS t(e, ord);
        INSERT INTO result_paths (session_id, path, set_key, set_value, set_bytes, del_key)
        SELECT p_session, r.path, r.set_key, r.set_value, r.set_bytes, r.del_key
          FROM jsonb_to_recordset(v_rows)
               AS r(path text, set_key text, set_value jsonb, set_bytes int, del_key text)
        ON CONFLICT (session_id, path) DO UPDATE
           SET set_key = EXCLUDED.set_key, set_value = EXCLUDED.set_value,
               set_bytes = EXCLUDED.set_bytes, del_key = EXCLUDED.del_key;
        v_version := v_version + v_applied;
        INSERT INTO result_heads (session_id, organisation_id, version, last_ts, state_bytes,
                                  log_bytes, updated_at)
        VALUES (p_session, p_org, v_version,
                CASE WHEN v_last_ts IS NULL OR v_max_ts > v_last_ts COLLATE "C"
                     THEN v_max_ts ELSE v_last_ts END,
                v_state_bytes + v_delta, v_log_bytes + v_add_log, p_now)
        ON CONFLICT (session_id) DO UPDATE
           SET version = EXCLUDED.version, last_ts = EXCLUDED.last_ts,
               state_bytes = EXCLUDED.state_bytes, log_bytes = EXCLUDED.log_bytes,
               updated_at = EXCLUDED.updated_at;
        IF p_audit IS NOT NULL THEN
            -- The audit trail (table audit_entries, migration 0008_audit): a session
            -- created here, then the accepted batch, in this transaction.
            IF v_created THEN
                INSERT INTO audit_entries (id, organisation_id, actor_type, actor_id, action,
                    subject_type, subject_id, payload, transaction_id, created_at)
                VALUES (gen_random_uuid(), p_org, p_audit->>'actor_type',
                    (p_audit->>'actor_id')::uuid, 'test_session.created', 'test_session',
                    p_session::text,
                    jsonb_build_object('status', 'draft', 'created_by_results_sync', true),
                    p_audit->>'transaction_id', p_now);
            END IF;
            INSERT INTO audit_entries (id, organisation_id, actor_type, actor_id, action,
                subject_type, subject_id, payload, transaction_id, created_at)
            VALUES (gen_random_uuid(), p_org, p_audit->>'actor_type',
                (p_audit->>'actor_id')::uuid, 'results.accepted', 'test_session',
                p_session::text,
                jsonb_build_object(
                    'op_ids', (SELECT jsonb_agg(e->>5 ORDER BY ord)
                                 FROM jsonb_array_elements(v_fresh) WITH ORDINALITY AS t(e, ord)),
                    'version', v_version, 'applied', v_applied,
                    'duplicates', v_duplicates, 'device_id', p_audit->'device_id'),
                p_audit->>'transaction_id', p_now);
        END IF;
    END IF;

    v_body := convert_to(format(
        '{"session_id":"%s","version":%s,"applied":%s,"duplicates":%s,"server_ts":"%s"}',
        p_session, v_version, v_applied, v_duplicates, p_server_ts), 'UTF8');
    IF p_key IS NOT NULL THEN
        INSERT INTO idempotency_records (id, organisation_id, user_id, method, path,
            idempotency_key, request_fingerprint, state, response_status, response_body,
            response_headers, response_encoding, response_document_version, expires_at,
            created_at, updated_at)
        VALUES (gen_random_uuid(), p_org, p_user, p_method, p_path, p_key, p_fingerprint,
            'completed', 200, v_body, p_headers, NULL,
            CASE WHEN p_want_document THEN v_version END, p_expires, p_now, p_now);
    END IF;
    IF p_want_document THEN
        SELECT coalesce(jsonb_agg(jsonb_build_array(p.path, p.set_key, p.set_value,
                                                    p.del_key)), '[]'::jsonb)
          INTO v_rows
          FROM result_paths p WHERE p.session_id = p_session;
    END IF;
    RETURN QUERY SELECT 'ok'::text, v_version, v_applied, v_duplicates, v_body, 200,
        p_headers, NULL::bigint, NULL::text, NULL::bigint, NULL::text,
        CASE WHEN p_want_document THEN v_rows END;
END
$fn$;
"""
