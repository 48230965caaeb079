"""The ``idempotency_records`` table: prebuilt statements and how bodies are stored.

Statements are built once and run on the request's connection: a statement object
memoises its cache key, so no compile step runs per request.
"""

from __future__ import annotations

import hashlib
import uuid
import zlib
from datetime import datetime
from typing import Any, cast

from sqlalchemy import BigInteger, Row, Table, bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from src.app.core.idempotency_model import IdempotencyRecord

COMPRESS_OVER_BYTES = 4096
"""Bodies larger than this are stored zlib-compressed (``response_encoding = 'zlib'``)."""

_TABLE = cast(Table, IdempotencyRecord.__table__)
_C = _TABLE.c
_CLAIM_COLUMNS = (
    "id",
    "organisation_id",
    "user_id",
    "method",
    "path",
    "idempotency_key",
    "request_fingerprint",
    "state",
    "expires_at",
    "created_at",
    "updated_at",
)
# PostgreSQL: the advisory lock is taken in the claiming statement itself
# (INSERT ... SELECT ... WHERE pg_try_advisory_xact_lock(...)), one round trip.
CLAIM_PG = (
    pg_insert(_TABLE)
    .from_select(
        list(_CLAIM_COLUMNS),
        select(*(bindparam(f"v_{name}", type_=_C[name].type) for name in _CLAIM_COLUMNS)).where(
            func.pg_try_advisory_xact_lock(bindparam("lock_id", type_=BigInteger()))
        ),
    )
    .on_conflict_do_nothing()
    .returning(_C.id)
)
CLAIM_SQLITE = (
    sqlite_insert(_TABLE)
    .values({name: bindparam(f"v_{name}", type_=_C[name].type) for name in _CLAIM_COLUMNS})
    .on_conflict_do_nothing()
    .returning(_C.id)
)
TRY_LOCK = select(func.pg_try_advisory_xact_lock(bindparam("lock_id", type_=BigInteger())))
FIND = select(
    _C.id,
    _C.state,
    _C.expires_at,
    _C.request_fingerprint,
    _C.response_status,
    _C.response_body,
    _C.response_headers,
    _C.response_encoding,
    _C.response_document_version,
).where(
    _C.organisation_id == bindparam("organisation_id"),
    _C.user_id == bindparam("user_id"),
    _C.method == bindparam("method"),
    _C.path == bindparam("path"),
    _C.idempotency_key == bindparam("key"),
)
StoredRecord = Row[Any, Any, Any, Any, Any, Any, Any, Any, Any]  # a row of FIND
DELETE = delete(_TABLE).where(_C.id == bindparam("record_id"))
COMPLETE = (
    update(_TABLE)
    .where(_C.id == bindparam("record_id"))
    .values(
        state="completed",
        response_status=bindparam("v_status", type_=_C.response_status.type),
        response_body=bindparam("v_body", type_=_C.response_body.type),
        response_headers=bindparam("v_headers", type_=_C.response_headers.type),
        response_encoding=bindparam("v_encoding", type_=_C.response_encoding.type),
        expires_at=bindparam("v_expires_at", type_=_C.expires_at.type),
        updated_at=bindparam("v_now", type_=_C.updated_at.type),
    )
)


def advisory_lock_id(scope: tuple[str, ...]) -> int:
    """The PostgreSQL advisory lock of a key's scope (64 bits of its SHA-256)."""
    digest = hashlib.sha256("\x1f".join(scope).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def encode_body(body: bytes) -> tuple[bytes, str | None]:
    """What to store for a response body, and its encoding (None: as is)."""
    if len(body) <= COMPRESS_OVER_BYTES:
        return body, None
    return zlib.compress(body, 1), "zlib"


def decode_body(stored: bytes | None, encoding: str | None) -> bytes:
    if stored is None:
        return b""
    if encoding == "zlib":
        return zlib.decompress(stored)
    if encoding is not None:
        raise ValueError(f"unknown stored body encoding {encoding!r}")
    return bytes(stored)


async def insert_claim(
    conn: AsyncConnection, params: dict[str, Any], lock_id: int | None
) -> uuid.UUID | None:
    if lock_id is not None:
        inserted: uuid.UUID | None = await conn.scalar(CLAIM_PG, {**params, "lock_id": lock_id})
    else:
        inserted = await conn.scalar(CLAIM_SQLITE, params)
    return inserted


async def try_lock(conn: AsyncConnection, lock_id: int) -> bool:
    # Re-entrant: true as well when this transaction already holds it.
    return bool(await conn.scalar(TRY_LOCK, {"lock_id": lock_id}))


async def find(
    conn: AsyncConnection,
    scope: tuple[str, str, str, str, str],
    caller_ids: tuple[uuid.UUID, uuid.UUID],
) -> StoredRecord | None:
    _org, _user, method, path, key = scope
    organisation_id, user_id = caller_ids
    found: StoredRecord | None = (
        await conn.execute(
            FIND,
            {
                "organisation_id": organisation_id,
                "user_id": user_id,
                "method": method,
                "path": path,
                "key": key,
            },
        )
    ).one_or_none()
    return found


async def delete_record(conn: AsyncConnection, record_id: uuid.UUID) -> None:
    await conn.execute(DELETE, {"record_id": record_id})


async def complete(
    conn: AsyncConnection,
    record_id: uuid.UUID,
    *,
    status: int,
    body: bytes,
    headers: dict[str, str],
    expires_at: datetime,
    now: datetime,
) -> None:
    stored, encoding = encode_body(body)
    await conn.execute(
        COMPLETE,
        {
            "record_id": record_id,
            "v_status": status,
            "v_body": stored,
            "v_headers": headers,
            "v_encoding": encoding,
            "v_expires_at": expires_at,
            "v_now": now,
        },
    )
