"""Results sync: submitting a batch (SQLite in Python, PostgreSQL in one statement)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from starlette.responses import Response

from src.app.core import audit
from src.app.core.errors import ApiError, FieldError
from src.app.core.idempotency import IdempotentRequest, in_flight, key_reused, replay
from src.app.core.idempotency.store import decode_body
from src.app.core.request_context import current_transaction_id
from src.app.core.responses import JSON_MEDIA_TYPE
from src.app.core.settings import Settings
from src.app.core.tenancy import Principal
from src.app.results.documents import (
    document_at,
    read_state,
    render_document,
    states_of,
    submitted_body,
    with_document,
)
from src.app.results.hlc import HybridLogicalClock, wall_clock_ms
from src.app.results.ingest import InvalidBatch, PreparedChange, prepare_changes, stamp
from src.app.results.schemas import ResultsSubmission
from src.app.results.state import document
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

# The PostgreSQL write path: one statement (see migration 0003_results_state).
_WRITE = text(
    "SELECT o_outcome, o_version, o_applied, o_duplicates, o_body, o_status, o_headers, "
    "o_doc_version, o_encoding, o_detail, o_last_ts, o_rows FROM firemode_results_write("
    ":org, :user, :session, :key, :method, :path, :fingerprint, :lock, :headers, "
    ":want_document, :expires, :now, :ops, :server_ts, :max_ops, :max_state_bytes, "
    ":max_log_bytes, :audit)"
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
    db: AsyncSession,
    principal: Principal,
    session_id: uuid.UUID,
    body: ResultsSubmission,
    idempotency: IdempotentRequest,
    *,
    clock: HybridLogicalClock = SERVER_CLOCK,
) -> Submitted:
    """Merge a batch into the session's results and answer (or replay, or refuse)."""
    settings: Settings = request.app.state.settings
    prepared = _prepare(body, settings)
    device_id = body.device_id or server_device_id(principal)
    minimal = wants_minimal(request)
    if db.get_bind().dialect.name == "postgresql" and idempotency.key is not None:
        return await _submit_in_one_statement(
            db,
            principal,
            session_id,
            prepared,
            idempotency,
            settings,
            clock,
            device_id=device_id,
            minimal=minimal,
        )
    counts: list[int] = [0, 0]

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
    db: AsyncSession,
    principal: Principal,
    session_id: uuid.UUID,
    prepared: list[PreparedChange],
    idempotency: IdempotentRequest,
    settings: Settings,
    clock: HybridLogicalClock,
    *,
    device_id: str,
    minimal: bool,
) -> Submitted:
    claim = await idempotency.claim_for(principal)
    _org, _user, method, path, key = claim.scope
    if db.in_transaction():
        await db.commit()  # the auth dependencies' read, if any
    # Autocommit: the function's statement is its own transaction (no BEGIN, no COMMIT).
    conn = await db.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    headers = response_headers(minimal)
    audit_actor = audit.Actor.of(principal)
    last_ts: str | None = None
    for _attempt in range(3):
        ops = stamp(prepared, device_id=device_id, clock=clock, last_applied_ts=last_ts)
        payload = [
            [op.op, op.path, op.value, op.ts, op.device_id, op.op_id, c.value_bytes, c.ts is None]
            for op, c in zip(ops, prepared, strict=True)
        ]
        row = (
            await conn.execute(
                _WRITE,
                {
                    "org": principal.organisation_id,
                    "user": principal.user_id,
                    "session": session_id,
                    "key": key,
                    "method": method,
                    "path": path,
                    "fingerprint": claim.fingerprint,
                    "lock": claim.lock_id,
                    "headers": json.dumps(headers),
                    "want_document": not minimal,
                    "expires": claim.expires_at,
                    "now": claim.now,
                    "ops": json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
                    "server_ts": str(clock.tick()),
                    "max_ops": settings.max_session_ops,
                    "max_state_bytes": settings.max_document_bytes,
                    "max_log_bytes": settings.max_session_bytes,
                    "audit": json.dumps(
                        {
                            "actor_type": audit_actor.type,
                            "actor_id": str(audit_actor.id),
                            "transaction_id": current_transaction_id(),
                            "device_id": device_id,
                        }
                    ),
                },
            )
        ).one()
        if row.o_outcome != "restamp":
            break
        last_ts = row.o_last_ts  # another process stamped later ops: stamp after them
    else:
        raise in_flight()
    return await _answer(conn, principal, session_id, row, settings)


async def _answer(
    conn: AsyncConnection,
    principal: Principal,
    session_id: uuid.UUID,
    row: Any,
    settings: Settings,
) -> Submitted:
    outcome: str = row.o_outcome
    if outcome == "ok":
        body = bytes(row.o_body)
        if row.o_rows is not None:
            rows = json.loads(row.o_rows) if isinstance(row.o_rows, str) else row.o_rows
            body = with_document(body, render_document(document(states_of(rows))))
        return Submitted(
            Response(body, headers=_headers(row.o_headers)), row.o_applied, row.o_duplicates
        )
    if outcome == "replay":
        body = decode_body(row.o_body, row.o_encoding)
        if row.o_doc_version is not None:
            body = with_document(
                body,
                render_document(await _document_at(conn, principal, session_id, row.o_doc_version)),
            )
        return Submitted(replay(row.o_status, body, _headers(row.o_headers)), 0, 0)
    refusals: dict[str, Callable[[], ApiError]] = {
        "mismatch": key_reused,
        "in_flight": in_flight,
        "not_found": lambda: ApiError(404, f"Test session {session_id} does not exist"),
        "completed": lambda: completed(session_id),
        "too_many_ops": lambda: too_many_ops(row.o_detail, settings.max_session_ops),
        "session_full": lambda: too_many_bytes(row.o_detail, settings.max_session_bytes),
        "too_large": lambda: too_large(row.o_detail, settings.max_document_bytes),
    }
    raise refusals[outcome]()


def _headers(stored: Any) -> dict[str, str]:
    parsed = json.loads(stored) if isinstance(stored, str) else stored
    return {str(k): str(v) for k, v in (parsed or {}).items()}


async def _document_at(
    conn: AsyncConnection, principal: Principal, session_id: uuid.UUID, version: int
) -> dict[str, Any]:
    current_version, doc = await read_state(conn, principal.organisation_id, session_id)
    if current_version == version:
        return doc
    return await document_at(conn, session_id, version)
