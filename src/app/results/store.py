"""Writing results in Python: the write path on SQLite, and rebuilding the state.

PostgreSQL runs the same steps in one server-side function (migration
0003_results_state, ``firemode_results_write``); both follow docs/api/results-engine.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from src.app.core import audit
from src.app.core.clock import utc_now
from src.app.core.errors import ApiError, FieldError
from src.app.core.settings import Settings
from src.app.core.tenancy import Principal
from src.app.results.crdt import Op, validate_value
from src.app.results.documents import path_state
from src.app.results.hlc import HybridLogicalClock
from src.app.results.ingest import (
    PreparedChange,
    encode_order_key,
    split_duplicates,
    stamp,
)
from src.app.results.models import ResultHead, ResultOp, ResultPath
from src.app.results.state import PathState, fold, segments_of, stored_bytes
from src.app.sessions.models import SessionStatus, TestSession

_ID_CHUNK = 500  # bind parameters per IN (...) look-up, well under SQLite's limit
_OPS_T = cast(Table, ResultOp.__table__)
_HEADS_T = cast(Table, ResultHead.__table__)
_PATHS_T = cast(Table, ResultPath.__table__)
_SESSIONS_T = cast(Table, TestSession.__table__)
_OPS, _HEADS, _PATHS, _S = _OPS_T.c, _HEADS_T.c, _PATHS_T.c, _SESSIONS_T.c

_LOCK_SESSION = (
    select(_S.status)
    .where(_S.id == bindparam("session_id"), _S.organisation_id == bindparam("organisation_id"))
    # FOR NO KEY UPDATE on PostgreSQL: serialises with other writers and with PATCH,
    # without blocking the foreign-key checks of the op log.
    .with_for_update(key_share=True)
)
_HEAD = select(_HEADS.version, _HEADS.last_ts, _HEADS.state_bytes, _HEADS.log_bytes).where(
    _HEADS.session_id == bindparam("session_id")
)
_KNOWN_OP_IDS = select(_OPS.op_id).where(
    _OPS.session_id == bindparam("session_id"),
    _OPS.op_id.in_(bindparam("op_ids", expanding=True)),
)
_PATH_ROWS = select(
    _PATHS.path, _PATHS.set_key, _PATHS.set_value, _PATHS.set_bytes, _PATHS.del_key
).where(
    _PATHS.session_id == bindparam("session_id"),
    _PATHS.path.in_(bindparam("paths", expanding=True)),
)
_INSERT_OPS = insert(_OPS_T)


@dataclass(frozen=True, slots=True)
class Written:
    version: int
    applied: int
    duplicates: int


def too_many_ops(count: int, limit: int) -> ApiError:
    return ApiError(
        422,
        f"The session's results log would hold {count} ops, over the limit of {limit}",
        errors=[FieldError(pointer="/changes", detail="the session's results log is full")],
    )


def too_many_bytes(count: int, limit: int) -> ApiError:
    return ApiError(
        422,
        f"The session's results log would hold {count} bytes of paths and values, over the "
        f"limit of {limit} bytes (FIREMODE_MAX_SESSION_BYTES)",
        errors=[FieldError(pointer="/changes", detail="the session's results log is full")],
    )


def too_large(size: int, limit: int) -> ApiError:
    return ApiError(
        422,
        f"The merged results document would be {size} bytes, over the limit of {limit} bytes",
        errors=[FieldError(pointer="/changes", detail="the merged document is too large")],
    )


def completed(session_id: uuid.UUID) -> ApiError:
    return ApiError(
        409, f"Test session {session_id} is completed: its results can no longer change"
    )


def _insert(conn: AsyncConnection) -> Any:
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert


async def lock_session(
    conn: AsyncConnection, principal: Principal, session_id: uuid.UUID
) -> tuple[str, bool]:
    """Lock the caller's session row, creating it as a draft when the id is unknown;
    return its status and whether this call created it."""
    params = {"session_id": session_id, "organisation_id": principal.organisation_id}
    status: str | None = await conn.scalar(_LOCK_SESSION, params)
    created = None
    if status is None:
        # Results may arrive before the session does. ON CONFLICT DO NOTHING makes the
        # creation race-safe, and leaves another organisation's session with this id alone.
        now = utc_now()
        created = await conn.scalar(
            _insert(conn)(_SESSIONS_T)
            .values(
                id=session_id,
                organisation_id=principal.organisation_id,
                building_id=None,
                session_name="",
                frequency=None,
                scheduled_for=None,
                status=SessionStatus.draft.value,
                created_by=principal.user_id,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(_S.id)
        )
        status = await conn.scalar(_LOCK_SESSION, params)
        if status is None:
            raise ApiError(404, f"Test session {session_id} does not exist")
    return status, created is not None


async def _known_op_ids(conn: AsyncConnection, session_id: uuid.UUID, ids: list[str]) -> set[str]:
    known: set[str] = set()
    for start in range(0, len(ids), _ID_CHUNK):
        chunk = ids[start : start + _ID_CHUNK]
        rows = await conn.execute(_KNOWN_OP_IDS, {"session_id": session_id, "op_ids": chunk})
        known.update(rows.scalars())
    return known


async def load_states(
    conn: AsyncConnection, session_id: uuid.UUID, paths: Sequence[str]
) -> dict[str, PathState]:
    """The stored state of ``paths`` (those with none are absent)."""
    states: dict[str, PathState] = {}
    for start in range(0, len(paths), _ID_CHUNK):
        chunk = list(paths[start : start + _ID_CHUNK])
        rows = await conn.execute(_PATH_ROWS, {"session_id": session_id, "paths": chunk})
        for path, set_key, value, set_bytes, del_key in rows:
            states[path] = path_state(path, set_key, value, set_bytes, del_key)
    return states


def _key(op: Op | None) -> str | None:
    return None if op is None else encode_order_key(op.order_key)


def log_row(
    session_id: uuid.UUID,
    version: int,
    op: Op,
    organisation_id: uuid.UUID,
    received_by: uuid.UUID,
    created_at: datetime,
) -> dict[str, Any]:
    """One ``result_ops`` row: ``op`` accepted at ``version`` of the session's log."""
    return {
        "session_id": session_id,
        "version": version,
        "organisation_id": organisation_id,
        "op": op.op,
        "path": op.path,
        "value": op.value,
        "ts": op.ts,
        "device_id": op.device_id,
        "op_id": op.op_id,
        "received_by": received_by,
        "created_at": created_at,
    }


def _row(session_id: uuid.UUID, path: str, state: PathState) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "path": path,
        "set_key": _key(state.set),
        "set_value": state.set.value if state.set is not None else None,
        "set_bytes": state.set_bytes,
        "del_key": _key(state.delete),
    }


async def save_states(
    conn: AsyncConnection, session_id: uuid.UUID, changed: dict[str, PathState]
) -> None:
    if not changed:
        return
    statement = _insert(conn)(_PATHS_T)
    statement = statement.on_conflict_do_update(
        index_elements=["session_id", "path"],
        set_={
            name: statement.excluded[name]
            for name in ("set_key", "set_value", "set_bytes", "del_key")
        },
    )
    await conn.execute(statement, [_row(session_id, p, s) for p, s in changed.items()])


async def save_head(
    conn: AsyncConnection,
    principal_organisation: uuid.UUID,
    session_id: uuid.UUID,
    *,
    version: int,
    last_ts: str | None,
    state_bytes: int,
    log_bytes: int,
) -> None:
    values = {
        "session_id": session_id,
        "organisation_id": principal_organisation,
        "version": version,
        "last_ts": last_ts,
        "state_bytes": state_bytes,
        "log_bytes": log_bytes,
        "updated_at": utc_now(),
    }
    statement = _insert(conn)(_HEADS_T).values(values)
    statement = statement.on_conflict_do_update(
        index_elements=["session_id"],
        set_={k: statement.excluded[k] for k in values if k != "session_id"},
    )
    await conn.execute(statement)


async def write_batch(
    conn: AsyncConnection,
    principal: Principal,
    session_id: uuid.UUID,
    prepared: Sequence[PreparedChange],
    *,
    device_id: str,
    settings: Settings,
    clock: HybridLogicalClock,
) -> Written:
    """Merge a batch into the session (the caller's transaction; nothing committed)."""
    status, created = await lock_session(conn, principal, session_id)
    if status == SessionStatus.completed.value:
        raise completed(session_id)
    head = (await conn.execute(_HEAD, {"session_id": session_id})).one_or_none()
    version, last_ts, state_bytes, log_bytes = head if head is not None else (0, None, 0, 0)
    ops = stamp(prepared, device_id=device_id, clock=clock, last_applied_ts=last_ts)
    sizes = {op.op_id: change.value_bytes for op, change in zip(ops, prepared, strict=True)}
    known = await _known_op_ids(conn, session_id, sorted({op.op_id for op in ops}))
    fresh, duplicates = split_duplicates(ops, known)
    if not fresh:
        return Written(version, 0, duplicates)
    if version + len(fresh) > settings.max_session_ops:
        # Bounds the log (and what one session can cost the server).
        raise too_many_ops(version + len(fresh), settings.max_session_ops)
    new_log_bytes = log_bytes + sum(len(op.path.encode()) + sizes[op.op_id] for op in fresh)
    if new_log_bytes > settings.max_session_bytes:
        raise too_many_bytes(new_log_bytes, settings.max_session_bytes)
    states = await load_states(conn, session_id, sorted({op.path for op in fresh}))
    changed = fold(states, ((op, sizes[op.op_id]) for op in fresh))
    new_state_bytes = state_bytes + sum(
        stored_bytes(after) - stored_bytes(states.get(path)) for path, after in changed.items()
    )
    if new_state_bytes > settings.max_document_bytes:
        raise too_large(new_state_bytes, settings.max_document_bytes)
    now = utc_now()
    await conn.execute(
        _INSERT_OPS,
        [
            log_row(
                session_id, version + offset, op, principal.organisation_id, principal.user_id, now
            )
            for offset, op in enumerate(fresh, start=1)
        ],
    )
    await save_states(conn, session_id, changed)
    newest_ts = max(op.ts for op in fresh)
    await save_head(
        conn,
        principal.organisation_id,
        session_id,
        version=version + len(fresh),
        last_ts=newest_ts if last_ts is None or newest_ts > last_ts else last_ts,
        state_bytes=new_state_bytes,
        log_bytes=new_log_bytes,
    )
    if created:
        await audit.record_by(
            conn,
            principal,
            "test_session.created",
            "test_session",
            session_id,
            {"status": SessionStatus.draft.value, "created_by_results_sync": True},
            now=now,
        )
    await audit.record_by(
        conn,
        principal,
        "results.accepted",
        "test_session",
        session_id,
        {
            "op_ids": [op.op_id for op in fresh],
            "version": version + len(fresh),
            "applied": len(fresh),
            "duplicates": duplicates,
            "device_id": device_id,
        },
        now=now,
    )
    return Written(version + len(fresh), len(fresh), duplicates)


_ALL_OPS = (
    select(_OPS.op, _OPS.path, _OPS.value, _OPS.ts, _OPS.device_id, _OPS.op_id)
    .where(_OPS.session_id == bindparam("session_id"))
    .order_by(_OPS.version)
)


async def rebuild(conn: AsyncConnection, session_id: uuid.UUID) -> int:
    """Recompute the session's head and per-path state from its log; return the version."""
    organisation_id = await conn.scalar(select(_S.organisation_id).where(_S.id == session_id))
    if organisation_id is None:
        raise LookupError(f"no test session {session_id}")
    states: dict[str, PathState] = {}
    version = log_bytes = 0
    last_ts: str | None = None
    for kind, path, value, ts, device_id, op_id in await conn.execute(
        _ALL_OPS, {"session_id": session_id}
    ):
        op = Op(
            kind, path, value if kind == "set" else None, ts, device_id, op_id, segments_of(path)
        )
        size = validate_value(value, max_bytes=2**62) if kind == "set" else 0
        states.update(fold(states, [(op, size)]))
        version += 1
        log_bytes += len(path.encode()) + size
        last_ts = ts if last_ts is None or ts > last_ts else last_ts
    await conn.execute(delete(_PATHS_T).where(_PATHS.session_id == session_id))
    await conn.execute(delete(_HEADS_T).where(_HEADS.session_id == session_id))
    if version:
        await save_states(conn, session_id, states)
        await save_head(
            conn,
            organisation_id,
            session_id,
            version=version,
            last_ts=last_ts,
            state_bytes=sum(stored_bytes(s) for s in states.values()),
            log_bytes=log_bytes,
        )
    return version
