"""Results sync persistence: the op log, the materialised document, delta reads.

The op log (``result_ops``) is the truth; ``test_sessions.results_*`` is a cache of its
merge: the document, the version (ops accepted so far), the order key of the last op
applied (``results_last_key``) and the document's size. A submission that only adds
ops sorting after ``results_last_key`` is applied to the cached document; any other
(an op "from the past", e.g. a device that was offline for hours) rebuilds the document
from the whole log. Submissions on one session are serialised by a row lock on the
session (``SELECT ... FOR UPDATE``; on SQLite the transaction holds the database write
lock from its start), and run in the caller's transaction, which the idempotency
mechanism commits together with the stored response.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import Row, Table, bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from src.app.core import audit
from src.app.core.clock import utc_now
from src.app.core.errors import ApiError, FieldError
from src.app.core.settings import Settings
from src.app.core.tenancy import Principal, scoped
from src.app.results.crdt import (
    Materialised,
    Op,
    OrderKey,
    apply_ops,
    can_apply_incrementally,
    document_size_bytes,
    parse_pointer,
)
from src.app.results.hlc import HybridLogicalClock, wall_clock_ms
from src.app.results.ingest import (
    KEY_SEPARATOR,
    InvalidBatch,
    decode_order_key,
    encode_order_key,
    max_key,
    prepare_changes,
    split_duplicates,
    stamp,
)
from src.app.results.models import ResultOp
from src.app.results.schemas import ResultOpOut, ResultsOut, ResultsSubmission
from src.app.sessions.models import SessionStatus, TestSession

SERVER_CLOCK = HybridLogicalClock()
"""One hybrid logical clock per process: stamps ops sent without ``ts``, and advances on
every ``ts`` received so that the server never stamps behind what it has seen."""

MergeMode = Literal["incremental", "rebuild", "none"]
_ID_CHUNK = 500  # bind parameters per IN (...) lookup, well under SQLite's limit
_RESULT_OPS = cast(Table, ResultOp.__table__)
_SESSIONS = cast(Table, TestSession.__table__)

# The write path runs prebuilt Core statements on the request's connection: no ORM
# compile step, no identity map, and a statement object whose cache key is computed
# once per process (it is memoised on the object).
_OPS = _RESULT_OPS.c
_S = _SESSIONS.c
_LOCK_SESSION = (
    select(
        _S.status,
        _S.results_document,
        _S.results_version,
        _S.results_last_key,
        # The log's version and the batch's known op ids, read in the same round trip.
        # Both come from the statement's snapshot, which on PostgreSQL predates the wait
        # for the row lock: if another submission committed meanwhile, ``log_version``
        # falls behind the (re-read, locked) ``results_version`` and the caller looks
        # the ids up again. Ops are only ever added under this lock, together with the
        # version, so equal versions mean the snapshot saw the whole log.
        select(func.max(_OPS.version))
        .where(_OPS.session_id == bindparam("session_id"))
        .scalar_subquery()
        .label("log_version"),
        select(func.aggregate_strings(_OPS.op_id, KEY_SEPARATOR))
        .where(
            _OPS.session_id == bindparam("session_id"),
            _OPS.op_id.in_(bindparam("op_ids", expanding=True)),
        )
        .scalar_subquery()
        .label("known"),
    )
    # The tenancy scope (what ``scoped`` adds), as a bind parameter: built once.
    .where(_S.id == bindparam("session_id"), _S.organisation_id == bindparam("organisation_id"))
    .with_for_update()
)
_KNOWN_OP_IDS = select(_OPS.op_id).where(
    _OPS.session_id == bindparam("session_id"),
    _OPS.op_id.in_(bindparam("op_ids", expanding=True)),
)
_LOAD_LOG = (
    select(_OPS.op, _OPS.path, _OPS.value, _OPS.ts, _OPS.device_id, _OPS.op_id)
    .where(_OPS.session_id == bindparam("session_id"))
    .order_by(_OPS.version)
)
_INSERT_OPS = insert(_RESULT_OPS)
_UPDATE_SESSION = (
    update(_SESSIONS)
    .where(_S.id == bindparam("session_id"))
    .values(
        results_document=bindparam("document", type_=_S.results_document.type),
        results_version=bindparam("version", type_=_S.results_version.type),
        results_last_key=bindparam("last_key", type_=_S.results_last_key.type),
        results_size_bytes=bindparam("size", type_=_S.results_size_bytes.type),
        updated_at=bindparam("now", type_=_S.updated_at.type),
    )
)


@dataclass(frozen=True, slots=True)
class Submitted:
    session_id: uuid.UUID
    version: int
    applied: int
    duplicates: int
    server_ts: str
    document: dict[str, Any]
    mode: MergeMode


def _invalid(problems: InvalidBatch) -> ApiError:
    return ApiError(
        422,
        f"The changes are invalid: {problems}",
        errors=[FieldError(pointer=p.pointer, detail=p.detail) for p in problems.problems],
    )


def server_device_id(principal: Principal) -> str:
    """Device of ops sent without ``device_id``: the sending user, which keeps two users'
    server-stamped ops apart and says in delta pulls who wrote them."""
    return f"user:{principal.user_id}"


@dataclass(frozen=True, slots=True)
class _Locked:
    status: str
    document: dict[str, Any]
    version: int
    last_key: str | None
    known: set[str]


def _locked(row: Row[Any, Any, Any, Any, Any, Any]) -> _Locked | None:
    """The locked row, or None when the known ids must be looked up again (see
    ``_LOCK_SESSION``)."""
    if (row.log_version or 0) != row.results_version:
        return None
    known = set(row.known.split(KEY_SEPARATOR)) if row.known else set()
    return _Locked(
        row.status, row.results_document, row.results_version, row.results_last_key, known
    )


async def _lock_session(
    conn: AsyncConnection, principal: Principal, session_id: uuid.UUID, ids: list[str]
) -> _Locked:
    """Lock the caller's session row, creating it as a draft when the id is unknown, and
    find which of ``ids`` its log already holds."""
    params = {
        "session_id": session_id,
        "organisation_id": principal.organisation_id,
        # A long batch is looked up in chunks below (SQLite's bind-parameter limit).
        "op_ids": ids if len(ids) <= _ID_CHUNK else [],
    }
    row = (await conn.execute(_LOCK_SESSION, params)).one_or_none()
    if row is None:
        await _create_draft(conn, principal, session_id)
        row = (await conn.execute(_LOCK_SESSION, params)).one_or_none()
        if row is None:
            raise ApiError(404, f"Test session {session_id} does not exist")
    locked = _locked(row) if len(ids) <= _ID_CHUNK else None
    if locked is not None:
        return locked
    known = await _known_op_ids(conn, session_id, ids)
    return _Locked(
        row.status, row.results_document, row.results_version, row.results_last_key, known
    )


async def _create_draft(conn: AsyncConnection, principal: Principal, session_id: uuid.UUID) -> None:
    # Results may arrive before the session does. ON CONFLICT DO NOTHING makes the
    # creation race-safe, and leaves another organisation's session with this id alone.
    now = utc_now()
    insert_ = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    created = await conn.scalar(
        insert_(_SESSIONS)
        .values(
            id=session_id,
            organisation_id=principal.organisation_id,
            building_id=None,
            session_name="",
            frequency=None,
            scheduled_for=None,
            status=SessionStatus.draft.value,
            created_by=principal.user_id,
            results_document={},
            results_version=0,
            results_last_key=None,
            results_size_bytes=document_size_bytes({}),
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(_S.id)
    )
    if created is not None:
        await audit.record_by(
            conn,
            principal,
            "test_session.created",
            "test_session",
            session_id,
            {"status": SessionStatus.draft.value, "created_by_results_sync": True},
            now=now,
        )


async def _known_op_ids(conn: AsyncConnection, session_id: uuid.UUID, ids: list[str]) -> set[str]:
    known: set[str] = set()
    for start in range(0, len(ids), _ID_CHUNK):
        chunk = ids[start : start + _ID_CHUNK]
        rows = await conn.execute(_KNOWN_OP_IDS, {"session_id": session_id, "op_ids": chunk})
        known.update(rows.scalars())
    return known


# A session's log repeats the same few paths many times over: a rebuild parses each once.
_log_path_segments = functools.lru_cache(maxsize=16_384)(parse_pointer)


async def load_log(conn: AsyncConnection, session_id: uuid.UUID) -> list[Op]:
    """Every op of the session, as engine ops (trusted: no re-validation)."""
    rows = await conn.execute(_LOAD_LOG, {"session_id": session_id})
    segments = _log_path_segments
    return [
        Op(op, path, value, ts, device_id, op_id, segments(path))
        for op, path, value, ts, device_id, op_id in rows
    ]


async def submit_results(
    session: AsyncSession,
    principal: Principal,
    session_id: uuid.UUID,
    body: ResultsSubmission,
    settings: Settings,
    *,
    clock: HybridLogicalClock = SERVER_CLOCK,
) -> Submitted:
    """Merge a batch into the session's results. Does not commit; raises ``ApiError``."""
    try:
        prepared = prepare_changes(
            body.changes,
            now_ms=wall_clock_ms(),
            max_skew_ms=settings.max_clock_skew_seconds * 1000,
        )
    except InvalidBatch as exc:
        raise _invalid(exc) from None

    device_id = body.device_id or server_device_id(principal)
    conn = await session.connection()
    # Op ids of ops sent without one derive from their ``ts``, known only once stamped,
    # which needs the lock; such ids are looked up after it (rare: devices send ids).
    ids = sorted({c.op_id for c in prepared if c.op_id is not None})
    locked = await _lock_session(conn, principal, session_id, ids)
    if locked.status == SessionStatus.completed.value:
        raise ApiError(
            409, f"Test session {session_id} is completed: its results can no longer change"
        )
    last_key = decode_order_key(locked.last_key)
    ops = stamp(
        prepared,
        device_id=device_id,
        clock=clock,
        last_applied_ts=last_key[0] if last_key else None,
    )
    known = locked.known
    derived = sorted({op.op_id for op in ops} - set(ids))
    if derived:
        known = known | await _known_op_ids(conn, session_id, derived)
    fresh, duplicates = split_duplicates(ops, known)
    version = locked.version
    document = locked.document
    mode: MergeMode = "none"
    if fresh and version + len(fresh) > settings.max_session_ops:
        # Bounds the log a rebuild replays (and what one session can cost the server).
        raise ApiError(
            422,
            f"The session's results log would hold {version + len(fresh)} ops, over the "
            f"limit of {settings.max_session_ops}",
            errors=[FieldError(pointer="/changes", detail="the session's results log is full")],
        )
    if fresh:
        document, new_key, mode = await _merged(conn, session_id, document, last_key, fresh)
        size = document_size_bytes(document)
        if size > settings.max_document_bytes:
            raise ApiError(
                422,
                f"The merged results document would be {size} bytes, over the limit of "
                f"{settings.max_document_bytes} bytes",
                errors=[FieldError(pointer="/changes", detail="the merged document is too large")],
            )
        now = utc_now()
        await _append(conn, principal, session_id, version, fresh, now)
        version += len(fresh)
        await conn.execute(
            _UPDATE_SESSION,
            {
                "session_id": session_id,
                "document": document,
                "version": version,
                "last_key": encode_order_key(new_key),
                "size": size,
                "now": now,
            },
        )
        await audit.record_by(
            conn,
            principal,
            "results.accepted",
            "test_session",
            session_id,
            {
                "op_ids": [op.op_id for op in fresh],
                "version": version,
                "applied": len(fresh),
                "duplicates": duplicates,
                "device_id": device_id,
            },
            now=now,
        )
    return Submitted(
        session_id=session_id,
        version=version,
        applied=len(fresh),
        duplicates=duplicates,
        server_ts=str(clock.tick()),
        document=document,
        mode=mode,
    )


async def _merged(
    conn: AsyncConnection,
    session_id: uuid.UUID,
    document: dict[str, Any],
    last_key: OrderKey | None,
    fresh: Sequence[Op],
) -> tuple[dict[str, Any], OrderKey | None, MergeMode]:
    if can_apply_incrementally(fresh, last_key):
        # ``document`` was just read from the database: mutating it is safe.
        return document, max_key(last_key, apply_ops(document, fresh)), "incremental"
    log = await load_log(conn, session_id)
    log.extend(fresh)
    rebuilt = Materialised.rebuild(log)
    return rebuilt.document, rebuilt.last_key, "rebuild"


async def _append(
    conn: AsyncConnection,
    principal: Principal,
    session_id: uuid.UUID,
    version: int,
    fresh: Sequence[Op],
    now: datetime,
) -> None:
    await conn.execute(
        _INSERT_OPS,
        [
            {
                "session_id": session_id,
                "version": version + offset,
                "organisation_id": principal.organisation_id,
                "op": op.op,
                "path": op.path,
                "value": op.value,
                "ts": op.ts,
                "device_id": op.device_id,
                "op_id": op.op_id,
                "received_by": principal.user_id,
                "created_at": now,
            }
            for offset, op in enumerate(fresh, start=1)
        ],
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


async def read_results(
    session: AsyncSession,
    principal: Principal,
    session_id: uuid.UUID,
    *,
    since: int | None,
    limit: int,
    max_delta_bytes: int,
) -> ResultsOut:
    """The document, and with ``since`` the ops accepted after it (a page of ``limit``)."""
    row = (
        await session.execute(
            scoped(
                select(TestSession.results_document, TestSession.results_version),
                TestSession,
                principal,
            ).where(TestSession.id == session_id)
        )
    ).one_or_none()
    if row is None:
        raise ApiError(404, f"Test session {session_id} does not exist")
    document, version = row
    if since is None:
        return ResultsOut(session_id=session_id, version=version, document=document)
    # Bounded by the version read above: those ops committed with it, so the page is
    # consistent with the document even while other devices keep writing.
    rows = await session.stream(
        select(
            ResultOp.version,
            ResultOp.op,
            ResultOp.path,
            ResultOp.value,
            ResultOp.ts,
            ResultOp.device_id,
            ResultOp.op_id,
        )
        .where(
            ResultOp.session_id == session_id,
            ResultOp.version > since,
            ResultOp.version <= version,
        )
        .order_by(ResultOp.version)
        .limit(limit + 1)
        .execution_options(yield_per=256)
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
        session_id=session_id, version=version, document=document, ops=ops, next_since=next_since
    )
