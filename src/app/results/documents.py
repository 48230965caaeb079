"""Reading results: the per-path state of a session, its document, its rendering.

A document is rendered with sorted keys, so the same state always gives the same bytes
(a replay of a stored response re-renders its document and must match byte for byte).
"""

from __future__ import annotations

import json
import uuid
from typing import Any, cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from src.app.core.errors import ApiError
from src.app.core.tenancy import Principal
from src.app.results.crdt import Op, document_size_bytes, merge
from src.app.results.ingest import KEY_SEPARATOR
from src.app.results.models import ResultHead, ResultOp, ResultPath
from src.app.results.schemas import ResultOpOut, ResultsOut
from src.app.results.state import PathState, document_of_rows, segments_of
from src.app.sessions.models import TestSession

_HEADS_T = cast(Table, ResultHead.__table__)
_PATHS_T = cast(Table, ResultPath.__table__)
_HEADS = _HEADS_T.c
_PATHS = _PATHS_T.c
_OPS = cast(Table, ResultOp.__table__).c
_SESSIONS_T = cast(Table, TestSession.__table__)
_SESSIONS = _SESSIONS_T.c

# One statement, so version and state come from one snapshot. A session without results
# yields one row of NULLs; an unknown session (or another organisation's) none.
_READ_STATE = (
    select(_HEADS.version, _PATHS.path, _PATHS.set_key, _PATHS.set_value, _PATHS.del_key)
    .select_from(_SESSIONS_T)
    .outerjoin(_HEADS_T, _HEADS.session_id == _SESSIONS.id)
    .outerjoin(_PATHS_T, _PATHS.session_id == _SESSIONS.id)
    .where(
        _SESSIONS.id == bindparam("session_id"),
        _SESSIONS.organisation_id == bindparam("organisation_id"),
    )
)
_LOG_UP_TO = (
    select(_OPS.op, _OPS.path, _OPS.value, _OPS.ts, _OPS.device_id, _OPS.op_id)
    .where(_OPS.session_id == bindparam("session_id"), _OPS.version <= bindparam("version"))
    .order_by(_OPS.version)
)


def _op(kind: str, path: str, value: Any, key: str) -> Op:
    ts, device_id, op_id = key.split(KEY_SEPARATOR, 2)
    return Op(
        "set" if kind == "set" else "delete", path, value, ts, device_id, op_id, segments_of(path)
    )


def path_state(
    path: str, set_key: str | None, value: Any, set_bytes: int, del_key: str | None
) -> PathState:
    """A stored row as engine state."""
    return PathState(
        _op("set", path, value, set_key) if set_key is not None else None,
        _op("delete", path, None, del_key) if del_key is not None else None,
        set_bytes,
    )


def render_document(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def submitted_body(
    session_id: uuid.UUID, version: int, applied: int, duplicates: int, server_ts: str
) -> bytes:
    """The POST response without ``document``; the PostgreSQL write function writes the
    very same bytes."""
    return (
        f'{{"session_id":"{session_id}","version":{version},"applied":{applied},'
        f'"duplicates":{duplicates},"server_ts":"{server_ts}"}}'
    ).encode()


def with_document(body: bytes, rendered_document: bytes) -> bytes:
    """A POST response body with its ``document`` member appended."""
    return body[:-1] + b',"document":' + rendered_document + b"}"


async def _state(
    conn: AsyncConnection | AsyncSession, organisation_id: uuid.UUID, session_id: uuid.UUID
) -> tuple[int, dict[str, Any]] | None:
    rows = (
        await conn.execute(
            _READ_STATE, {"session_id": session_id, "organisation_id": organisation_id}
        )
    ).all()
    if not rows:
        return None
    version = rows[0][0] or 0
    present = [row[1:] for row in rows if row[1] is not None]
    return version, document_of_rows(present)


async def read_state(
    conn: AsyncConnection | AsyncSession, organisation_id: uuid.UUID, session_id: uuid.UUID
) -> tuple[int, dict[str, Any]]:
    """(version, document) of the caller's session; ``ApiError`` 404 when unknown."""
    found = await _state(conn, organisation_id, session_id)
    if found is None:
        raise ApiError(404, f"Test session {session_id} does not exist")
    return found


async def current_document(
    db: AsyncSession, organisation_id: uuid.UUID, session_id: uuid.UUID
) -> tuple[int, dict[str, Any]]:
    """``(version, document)`` of the session's merged results now; ``(0, {})`` when it
    has none (or is not the organisation's). The one way other domains read it."""
    return await _state(db, organisation_id, session_id) or (0, {})


async def document_at(conn: AsyncConnection, session_id: uuid.UUID, version: int) -> dict[str, Any]:
    """The document as it was at ``version``: the merge of the log's first ops."""
    rows = await conn.execute(_LOG_UP_TO, {"session_id": session_id, "version": version})
    return merge(
        Op(kind, path, value, ts, device_id, op_id, segments_of(path))
        for kind, path, value, ts, device_id, op_id in rows
    )


def _op_out(
    version: int, op: str, path: str, value: Any, ts: str, device: str, op_id: str
) -> ResultOpOut:
    if op == "set":
        return ResultOpOut(
            version=version, op="set", path=path, value=value, ts=ts, device_id=device, op_id=op_id
        )
    return ResultOpOut(
        version=version, op="delete", path=path, ts=ts, device_id=device, op_id=op_id
    )


_DELTA = (
    select(_OPS.version, _OPS.op, _OPS.path, _OPS.value, _OPS.ts, _OPS.device_id, _OPS.op_id)
    .where(
        _OPS.session_id == bindparam("session_id"),
        _OPS.version > bindparam("since"),
        _OPS.version <= bindparam("version"),
    )
    .order_by(_OPS.version)
    .limit(bindparam("limit"))
)


async def read_results(
    db: AsyncSession,
    principal: Principal,
    session_id: uuid.UUID,
    *,
    since: int | None,
    limit: int,
    max_delta_bytes: int,
) -> ResultsOut:
    """The document, and with ``since`` the ops accepted after it (a page of ``limit``)."""
    version, doc = await read_state(db, principal.organisation_id, session_id)
    if since is None:
        return ResultsOut(session_id=session_id, version=version, document=doc)
    # Bounded by the version read above: those ops committed with it, so the page is
    # consistent with the document even while other devices keep writing.
    rows = await db.stream(
        _DELTA.execution_options(yield_per=256),
        {"session_id": session_id, "since": since, "version": version, "limit": limit + 1},
    )
    # A page ends at ``limit`` ops or at about ``max_delta_bytes`` of values, whichever
    # comes first (values may be 64 KiB each), and always holds at least one op.
    ops: list[ResultOpOut] = []
    value_bytes = 0
    next_since = None
    async for r in rows:
        if len(ops) == limit or (ops and value_bytes >= max_delta_bytes):
            next_since = ops[-1].version
            break
        ops.append(_op_out(*r))
        value_bytes += document_size_bytes(r.value)
    await rows.close()
    return ResultsOut(
        session_id=session_id, version=version, document=doc, ops=ops, next_since=next_since
    )
