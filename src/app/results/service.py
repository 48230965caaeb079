"""Results sync: submitting a batch (SQLite in Python, PostgreSQL in one statement)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from starlette.responses import Response

from src.app.core import audit
from src.app.core.database import Database, driver_connection, get_database
from src.app.core.errors import ApiError, FieldError
from src.app.core.idempotency import (
    Claim,
    IdempotentRequest,
    claim_of,
    in_flight,
    key_reused,
    replay,
)
from src.app.core.idempotency.store import decode_body
from src.app.core.request_context import current_transaction_id
from src.app.core.responses import JSON_MEDIA_TYPE
from src.app.core.settings import Settings
from src.app.core.tenancy import Principal
from src.app.identity.dependencies import PendingRevocationCheck, revoked
from src.app.identity.revocation import (
    TOKEN_REVOKED,
    RevocationChecker,
    get_revocation_checker,
    passes_sql,
)
from src.app.results.documents import (
    document_at,
    read_state,
    render_document,
    submitted_body,
    with_document,
)
from src.app.results.hlc import HybridLogicalClock, wall_clock_ms
from src.app.results.ingest import InvalidBatch, PreparedChange, prepare_changes, stamp
from src.app.results.schemas import ResultsSubmission
from src.app.results.state import document_of_rows
from src.app.results.store import (
    completed,
    too_large,
    too_many_bytes,
    too_many_ops,
    write_batch,
)

SERVER_CLOCK = HybridLogicalClock()
"""One hybrid logical clock per process: stamps ops sent without ``ts``, and advances on
every ``ts`` received so that the server never stamps behind what it has seen."""

PREFERENCE_APPLIED = "Preference-Applied"
RETURN_MINIMAL = "return=minimal"

# The PostgreSQL write path: one statement, the revocation check and the write function
# (migration 0003_results_state). The function runs only when the check passes
# (it is LATERAL on the check's one row); otherwise the statement yields no row.
# Sent through the driver itself ($n placeholders): the statement is prepared once per
# connection and kept by asyncpg's statement cache.
_WRITE = (
    "SELECT w.o_outcome, w.o_version, w.o_applied, w.o_duplicates, w.o_body, w.o_status,"  # noqa: S608
    " w.o_headers, w.o_doc_version, w.o_encoding, w.o_detail, w.o_last_ts, w.o_rows"
    " FROM (SELECT $1::uuid AS org WHERE "
    + passes_sql(jti="$19", user_id="$2", organisation_id="$1", issued_at="$20")
    + ") AS passed, LATERAL firemode_results_write(passed.org, $2, $3, $4, $5, $6, $7, $8,"
    " $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) AS w"
)


@dataclass(frozen=True, slots=True)
class Submitted:
    response: Response
    applied: int
    duplicates: int


def wants_minimal(request: Request) -> bool:
    """RFC 7240 ``Prefer: return=minimal`` (any of several preferences, any case)."""
    for header in request.headers.getlist("prefer"):
        for preference in header.split(","):
            name, _, value = preference.split(";", 1)[0].partition("=")
            if name.strip().lower() == "return" and value.strip().strip('"').lower() == ("minimal"):
                return True
    return False


def response_headers(minimal: bool) -> dict[str, str]:
    headers = {"content-type": JSON_MEDIA_TYPE}
    if minimal:
        headers[PREFERENCE_APPLIED.lower()] = RETURN_MINIMAL
    return headers


def server_device_id(principal: Principal) -> str:
    """Device of ops sent without ``device_id``: the sending user, which keeps two users'
    server-stamped ops apart and says in delta pulls who wrote them."""
    return f"user:{principal.user_id}"


def _prepare(body: ResultsSubmission, settings: Settings) -> list[PreparedChange]:
    try:
        return prepare_changes(
            body.changes,
            now_ms=wall_clock_ms(),
            max_skew_ms=settings.max_clock_skew_seconds * 1000,
        )
    except InvalidBatch as exc:
        raise ApiError(
            422,
            f"The changes are invalid: {exc}",
            errors=[FieldError(pointer=p.pointer, detail=p.detail) for p in exc.problems],
        ) from None


async def submit_results(
    request: Request,
    caller: PendingRevocationCheck,
    session_id: uuid.UUID,
    body: ResultsSubmission,
    key: str,
    *,
    clock: HybridLogicalClock = SERVER_CLOCK,
) -> Submitted:
    """Merge a batch into the session's results and answer (or replay, or refuse).

    The caller's revocation check is made here: inside the write statement on
    PostgreSQL (no round trip of its own), first thing on SQLite."""
    settings: Settings = request.app.state.settings
    database = get_database(request)
    principal = caller.principal
    device_id = body.device_id or server_device_id(principal)
    minimal = wants_minimal(request)
    if database.dialect_name == "postgresql":
        prepared = _prepare(body, settings)
        claim = await claim_of(request, key, principal)
        return await _submit_in_one_statement(
            database,
            caller,
            session_id,
            prepared,
            claim,
            settings,
            clock,
            device_id=device_id,
            minimal=minimal,
        )
    async with database.sessionmaker() as db:
        checker = await get_revocation_checker(request)
        refusal = await checker.refusal(db, caller.claims)
        if refusal is not None:
            raise revoked(refusal)
        prepared = _prepare(body, settings)
        return await _submit_in_python(
            IdempotentRequest(request, db, key),
            principal,
            session_id,
            prepared,
            settings,
            clock,
            device_id=device_id,
            minimal=minimal,
        )


async def _submit_in_python(
    idempotency: IdempotentRequest,
    principal: Principal,
    session_id: uuid.UUID,
    prepared: list[PreparedChange],
    settings: Settings,
    clock: HybridLogicalClock,
    *,
    device_id: str,
    minimal: bool,
) -> Submitted:
    counts: list[int] = [0, 0]
    db = idempotency.db

    async def work() -> Response:
        conn = await db.connection()
        written = await write_batch(
            conn,
            principal,
            session_id,
            prepared,
            device_id=device_id,
            settings=settings,
            clock=clock,
        )
        counts[:] = [written.applied, written.duplicates]
        out = submitted_body(
            session_id, written.version, written.applied, written.duplicates, str(clock.tick())
        )
        if not minimal:
            _version, doc = await read_state(conn, principal.organisation_id, session_id)
            out = with_document(out, render_document(doc))
        return Response(out, headers=response_headers(minimal))

    response = await idempotency.run(principal, work)
    return Submitted(response, *counts)


async def _submit_in_one_statement(
    database: Database,
    caller: PendingRevocationCheck,
    session_id: uuid.UUID,
    prepared: list[PreparedChange],
    claim: Claim,
    settings: Settings,
    clock: HybridLogicalClock,
    *,
    device_id: str,
    minimal: bool,
) -> Submitted:
    principal = caller.principal
    _org, _user, method, path, key = claim.scope
    headers = json.dumps(response_headers(minimal))
    audit_actor = audit.Actor.of(principal)
    audit_json = json.dumps(
        {
            "actor_type": audit_actor.type,
            "actor_id": str(audit_actor.id),
            "transaction_id": current_transaction_id(),
            "device_id": device_id,
        }
    )
    last_ts: str | None = None
    async with driver_connection(database) as conn:
        for _attempt in range(3):
            ops = stamp(prepared, device_id=device_id, clock=clock, last_applied_ts=last_ts)
            payload = [
                [
                    op.op,
                    op.path,
                    op.value,
                    op.ts,
                    op.device_id,
                    op.op_id,
                    c.value_bytes,
                    c.ts is None,
                ]
                for op, c in zip(ops, prepared, strict=True)
            ]
            row = await conn.fetchrow(
                _WRITE,
                principal.organisation_id,
                principal.user_id,
                session_id,
                key,
                method,
                path,
                claim.fingerprint,
                claim.lock_id,
                headers,
                not minimal,
                claim.expires_at,
                claim.now,
                json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
                str(clock.tick()),
                settings.max_session_ops,
                settings.max_document_bytes,
                settings.max_session_bytes,
                audit_json,
                caller.claims.jti,
                caller.claims.issued_at,
            )
            if row is None:
                break  # the token did not pass the revocation check: nothing was written
            if row["o_outcome"] != "restamp":
                break
            last_ts = row["o_last_ts"]  # another process stamped later ops: stamp after them
    # The connection is back in the pool (a refusal raised inside the block would have
    # discarded it): what follows may take another.
    if row is None:
        raise await _revocation_refusal(database, caller)
    if row["o_outcome"] == "restamp":
        raise in_flight()  # still behind after three tries: other writers keep stamping
    return await _answer(database, principal, session_id, row, settings)


async def _revocation_refusal(database: Database, caller: PendingRevocationCheck) -> ApiError:
    """Why the write statement found the token revoked (the database's own answer)."""
    async with database.sessionmaker() as db:
        reason = await RevocationChecker().database_refusal(db, caller.claims)
    return revoked(reason or TOKEN_REVOKED)


async def _answer(
    database: Database,
    principal: Principal,
    session_id: uuid.UUID,
    row: Mapping[str, Any],
    settings: Settings,
) -> Submitted:
    outcome: str = row["o_outcome"]
    if outcome == "ok":
        body = bytes(row["o_body"])
        rows = row["o_rows"]
        if rows is not None:
            body = with_document(body, render_document(document_of_rows(rows)))
        return Submitted(
            Response(body, headers=_headers(row["o_headers"])),
            row["o_applied"],
            row["o_duplicates"],
        )
    if outcome == "replay":
        body = decode_body(row["o_body"], row["o_encoding"])
        if row["o_doc_version"] is not None:
            body = with_document(
                body,
                render_document(
                    await _document_at(database, principal, session_id, row["o_doc_version"])
                ),
            )
        return Submitted(replay(row["o_status"], body, _headers(row["o_headers"])), 0, 0)
    detail = row["o_detail"]
    refusals: dict[str, Callable[[], ApiError]] = {
        "mismatch": key_reused,
        "in_flight": in_flight,
        "not_found": lambda: ApiError(404, f"Test session {session_id} does not exist"),
        "completed": lambda: completed(session_id),
        "too_many_ops": lambda: too_many_ops(detail, settings.max_session_ops),
        "session_full": lambda: too_many_bytes(detail, settings.max_session_bytes),
        "too_large": lambda: too_large(detail, settings.max_document_bytes),
    }
    raise refusals[outcome]()


def _headers(stored: Any) -> dict[str, str]:
    parsed = json.loads(stored) if isinstance(stored, str) else stored
    return {str(k): str(v) for k, v in (parsed or {}).items()}


async def _document_at(
    database: Database, principal: Principal, session_id: uuid.UUID, version: int
) -> dict[str, Any]:
    """The document a replayed response answered with (``version``)."""
    async with database.engine.connect() as connection:
        # Reads only: each statement on its own, no BEGIN/ROLLBACK round trips.
        conn = await connection.execution_options(isolation_level="AUTOCOMMIT")
        current_version, doc = await read_state(conn, principal.organisation_id, session_id)
        if current_version == version:
            return doc
        return await document_at(conn, session_id, version)
