"""Idempotency keys for POST routes (CONTRACT section 8, IETF httpapi "Idempotency-Key").

One mechanism for every POST route. A route declares the dependency and runs its work
through it; the mechanism owns the transaction (begin, claim, commit, roll back)::

    from src.app.core.idempotency import (
        IDEMPOTENCY_ERROR_STATUSES, IdempotentRequest, idempotency_optional, json_response,
    )

    @router.post("/things", status_code=201, response_model=ThingOut,
                 responses=error_responses(*IDEMPOTENCY_ERROR_STATUSES))
    async def create_thing(
        body: ThingIn,
        principal: Principal = Depends(require_writer),  # declared first: 401/403 first
        session: AsyncSession = Depends(get_db),
        idempotency: IdempotentRequest = Depends(idempotency_optional),  # or _required
    ) -> Response:
        async def work() -> Response:
            thing = Thing(...)
            session.add(thing)
            await session.flush()  # never commit inside work: run() commits
            return json_response(ThingOut.model_validate(thing), status_code=201)

        return await idempotency.run(principal, work)

Rules:

- ``work`` does every write of the request on the request's session (the one
  ``get_db`` gives, which the dependency shares) and must not commit or roll back.
  Raise ``ApiError`` for errors, as anywhere else.
- ``run`` first ends whatever read-only transaction the auth dependencies used and
  opens a write transaction (on SQLite with ``BEGIN IMMEDIATE``, so the write lock is
  taken up front and a read-then-write never fails with "database is locked"), claims
  the key, calls ``work``, stores the response and commits, all in that one transaction.
- Only successful responses (status < 400) are stored. An exception (a 5xx) or an
  error response rolls back the work *and* the claim, so the client's retry with the
  same key runs again. Every error in this API means "nothing was done", so running a
  retry again can never do the work twice, and a stored refusal would pin the client to
  a stale answer (a 403 before a role change, a 422 for a document that has since
  shrunk); a client that fixes its body may keep its key.
- Without the header, ``idempotency_optional`` runs the work in the same write
  transaction with nothing stored; ``idempotency_required`` answers 400.

Semantics (all scoped to organisation, user, method and request path):

- Same key, same request (SHA-256 of the canonical JSON body, plus the query string)
  after a stored success: the stored status, headers and exact body bytes are replayed
  with ``Idempotent-Replayed: true``; ``work`` does not run.
- Same key, different request: 422.
- Same key while the first request is still running: 409, ``retryable: true``,
  ``Retry-After``.

Design of the claim: it happens inside the work transaction, not in a separate one.
The in-flight record is never committed, so a crashed worker cannot wedge a key: when
its connection dies the database rolls the claim back with the work. On PostgreSQL the
claim takes ``pg_try_advisory_xact_lock`` on a hash of the scope, which works across
server processes and never waits: a second request for a key whose first request is
still open gets 409 at once. After that, ``INSERT ... ON CONFLICT DO NOTHING`` either
claims the key or finds the committed outcome to replay. (The alternative, committing an
``in_progress`` row in its own short transaction, costs a second commit per request and
needs leases to recover keys whose worker crashed.) On SQLite every write transaction
is serialised by ``BEGIN IMMEDIATE``, so a concurrent duplicate waits for the first to
commit and then replays. The table's ``in_progress`` state exists only inside the
claiming transaction. Records live ``idempotency_ttl_seconds`` (24 h);
``firemode maintenance purge`` deletes expired ones, and an expired record still
present counts as absent.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol, cast

from fastapi import Depends, Header, Request
from sqlalchemy import BigInteger, Row, Table, bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from src.app.core.clock import utc_now
from src.app.core.database import get_db
from src.app.core.errors import ApiError
from src.app.core.idempotency_model import IdempotencyRecord
from src.app.core.responses import json_response
from src.app.core.settings import Settings
from src.app.core.transactions import begin_write

__all__ = [
    "IDEMPOTENCY_ERROR_STATUSES",
    "IDEMPOTENCY_HEADER",
    "REPLAYED_HEADER",
    "Caller",
    "IdempotentRequest",
    "begin_write",
    "idempotency_optional",
    "idempotency_required",
    "json_response",
    "parse_idempotency_key",
    "request_fingerprint",
]

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
MAX_STORED_PATH = 1024  # idempotency_records.path
IN_FLIGHT_RETRY_AFTER_SECONDS = 1
IDEMPOTENCY_ERROR_STATUSES = (400, 409, 422)
"""What a route using the mechanism adds to its ``responses=error_responses(...)``."""

# Headers a replay must not copy: recomputed for the new response, or per-request.
_UNSTORED_HEADERS = frozenset({"content-length", "x-transaction-id", "date", "server"})

Work = Callable[[], Awaitable[Response]]

# Prebuilt Core statements, run on the request's connection: every request runs them,
# and a statement built once has its cache key computed once (no ORM compile step).
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
_CLAIM_PG = (
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
_CLAIM_SQLITE = (
    sqlite_insert(_TABLE)
    .values({name: bindparam(f"v_{name}", type_=_C[name].type) for name in _CLAIM_COLUMNS})
    .on_conflict_do_nothing()
    .returning(_C.id)
)
_TRY_LOCK = select(func.pg_try_advisory_xact_lock(bindparam("lock_id", type_=BigInteger())))
_FIND = select(
    _C.id,
    _C.state,
    _C.expires_at,
    _C.request_fingerprint,
    _C.response_status,
    _C.response_body,
    _C.response_headers,
).where(
    _C.organisation_id == bindparam("organisation_id"),
    _C.user_id == bindparam("user_id"),
    _C.method == bindparam("method"),
    _C.path == bindparam("path"),
    _C.idempotency_key == bindparam("key"),
)
_Record = Row[Any, Any, Any, Any, Any, Any, Any]  # a row of _FIND
_DELETE = delete(_TABLE).where(_C.id == bindparam("record_id"))
_COMPLETE = (
    update(_TABLE)
    .where(_C.id == bindparam("record_id"))
    .values(
        state="completed",
        response_status=bindparam("v_status", type_=_C.response_status.type),
        response_body=bindparam("v_body", type_=_C.response_body.type),
        response_headers=bindparam("v_headers", type_=_C.response_headers.type),
        expires_at=bindparam("v_expires_at", type_=_C.expires_at.type),
        updated_at=bindparam("v_now", type_=_C.updated_at.type),
    )
)


class Caller(Protocol):
    """Whom a key belongs to; ``identity.dependencies.Principal`` is one."""

    @property
    def user_id(self) -> uuid.UUID: ...

    @property
    def organisation_id(self) -> uuid.UUID: ...


def parse_idempotency_key(raw: str) -> str:
    """The key inside a header value: bare, or an RFC 8941 sf-string (``"..."``).

    Both spell the same key: ``abc`` and ``"abc"`` are one key. Raises ``ValueError``
    with a client-safe message when the value is not 1-255 printable ASCII characters.
    """
    value = raw.strip(" \t")
    if value.startswith('"'):
        key = _parse_sf_string(value)
    else:
        key = value
        if any(not 0x20 <= ord(ch) <= 0x7E for ch in key):
            raise ValueError("must be printable ASCII characters")
    if not key:
        raise ValueError("must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"must be at most {MAX_KEY_LENGTH} characters")
    return key


def _parse_sf_string(value: str) -> str:
    # RFC 8941 section 4.2.5: printable ASCII, with only \" and \\ as escapes.
    out: list[str] = []
    index = 1
    while index < len(value):
        ch = value[index]
        if ch == "\\":
            nxt = value[index + 1 : index + 2]
            if nxt not in ('"', "\\"):
                raise ValueError('a quoted key may only escape \\" and \\\\')
            out.append(nxt)
            index += 2
            continue
        if ch == '"':
            if index != len(value) - 1:
                raise ValueError("has characters after the closing quote")
            return "".join(out)
        if not 0x20 <= ord(ch) <= 0x7E:
            raise ValueError("must be printable ASCII characters")
        out.append(ch)
        index += 1
    raise ValueError("a quoted key is missing its closing quote")


def _header_key(request: Request, required: bool) -> str | None:
    values = request.headers.getlist(IDEMPOTENCY_HEADER)
    if not values:
        if required:
            raise ApiError(400, f"This request needs an {IDEMPOTENCY_HEADER} header")
        return None
    if len(values) > 1:
        raise ApiError(400, f"Send exactly one {IDEMPOTENCY_HEADER} header")
    try:
        return parse_idempotency_key(values[0])
    except ValueError as exc:
        raise ApiError(400, f"The {IDEMPOTENCY_HEADER} header {exc}") from None


def request_fingerprint(body: bytes, query: str = "") -> str:
    """SHA-256 over the canonical JSON body (sorted keys, no whitespace) and the query.

    Key order and whitespace do not make a different request; a body that is not JSON is
    hashed as raw bytes.
    """
    canonical: bytes
    if body.strip():
        try:
            parsed = json.loads(body)
        except ValueError:
            canonical = b"raw:" + body
        else:
            canonical = json.dumps(
                parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False
            ).encode("utf-8", "surrogatepass")
    else:
        canonical = b""
    digest = hashlib.sha256(canonical)
    digest.update(b"\x00" + query.encode("latin-1", "replace"))
    return digest.hexdigest()


def _advisory_lock_id(scope: tuple[str, ...]) -> int:
    digest = hashlib.sha256("\x1f".join(scope).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(slots=True)
class IdempotentRequest:
    """A POST request with (or without) an idempotency key; see the module docstring."""

    request: Request
    session: AsyncSession
    key: str | None

    @property
    def settings(self) -> Settings:
        settings: Settings = self.request.app.state.settings
        return settings

    async def run(self, caller: Caller, work: Work, *, fingerprint: str | None = None) -> Response:
        """Claim the key, run ``work``, store its response and commit; or replay.

        ``fingerprint`` overrides the body hash (e.g. for a streamed upload whose route
        hashes the content itself).
        """
        session = self.session
        await begin_write(session)
        try:
            record_id: uuid.UUID | None = None
            if self.key is not None:
                if fingerprint is None:
                    fingerprint = request_fingerprint(
                        await self.request.body(), self.request.url.query
                    )
                claimed = await self._claim(caller, fingerprint)
                if isinstance(claimed, Response):
                    await session.rollback()
                    return claimed
                record_id = claimed
            response = await work()
            if response.status_code >= 400:
                await session.rollback()
                return response
            if record_id is not None:
                await self._complete(record_id, response)
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
        return response

    async def has_outcome(self, caller: Caller) -> bool:
        """Whether ``run`` will replay a stored response (or refuse a different body)
        without calling ``work``: a route may then skip costly preparation that only a
        first request needs. A plain read; ``work`` must still cope if it runs after all."""
        if self.key is None:
            return False
        existing = await self._find(caller)
        return (
            existing is not None
            and existing.state == "completed"
            and existing.expires_at > utc_now()
        )

    def _scope(self, caller: Caller) -> tuple[str, str, str, str, str]:
        assert self.key is not None
        path = self.request.url.path
        if len(path) > MAX_STORED_PATH:
            # Fits the column and stays distinct from every other path.
            path = "sha256:" + hashlib.sha256(path.encode("utf-8", "surrogatepass")).hexdigest()
        return (
            str(caller.organisation_id),
            str(caller.user_id),
            self.request.method.upper(),
            path,
            self.key,
        )

    async def _claim(self, caller: Caller, fingerprint: str) -> uuid.UUID | Response:
        """The new record's id, or the response to give instead (replay; 409/422 raise)."""
        session = self.session
        scope = self._scope(caller)
        lock_id = (
            _advisory_lock_id(scope) if session.get_bind().dialect.name == "postgresql" else None
        )
        for _attempt in range(3):
            record_id = await self._insert(caller, fingerprint, lock_id)
            if record_id is not None:
                return record_id
            if lock_id is not None and not await self._lock(lock_id):
                # Another transaction holds the key: in flight, unless what it holds is
                # a replay of a committed, live outcome we may replay too.
                existing = await self._find(caller)
                if (
                    existing is not None
                    and existing.state == "completed"
                    and existing.expires_at > utc_now()
                ):
                    return self._replay_or_refuse(existing, fingerprint)
                raise self._in_flight()
            existing = await self._find(caller)
            if existing is None:
                continue  # rolled back or purged since the insert: claim again
            if existing.expires_at <= utc_now():
                # Expired but not purged yet: it no longer counts.
                conn = await session.connection()
                await conn.execute(_DELETE, {"record_id": existing.id})
                continue
            if existing.state != "completed":
                raise self._in_flight()
            return self._replay_or_refuse(existing, fingerprint)
        raise self._in_flight()

    async def _lock(self, lock_id: int) -> bool:
        # Re-entrant: true as well when this transaction already holds it.
        conn = await self.session.connection()
        locked = await conn.scalar(_TRY_LOCK, {"lock_id": lock_id})
        return bool(locked)

    async def _insert(
        self, caller: Caller, fingerprint: str, lock_id: int | None
    ) -> uuid.UUID | None:
        """Claim the key. On PostgreSQL the advisory lock is taken in the same statement
        (``INSERT ... SELECT ... WHERE pg_try_advisory_xact_lock(...)``), one round trip."""
        now = utc_now()
        _org, _user, method, path, key = self._scope(caller)
        params: dict[str, Any] = {
            "v_id": uuid.uuid4(),
            "v_organisation_id": caller.organisation_id,
            "v_user_id": caller.user_id,
            "v_method": method,
            "v_path": path,
            "v_idempotency_key": key,
            "v_request_fingerprint": fingerprint,
            "v_state": "in_progress",
            "v_expires_at": now + timedelta(seconds=self.settings.idempotency_ttl_seconds),
            "v_created_at": now,
            "v_updated_at": now,
        }
        conn = await self.session.connection()
        if lock_id is not None:
            params["lock_id"] = lock_id
            statement = _CLAIM_PG
        else:
            statement = _CLAIM_SQLITE
        inserted: uuid.UUID | None = await conn.scalar(statement, params)
        return inserted

    async def _find(self, caller: Caller) -> _Record | None:
        _org, _user, method, path, key = self._scope(caller)
        conn = await self.session.connection()
        found: _Record | None = (
            await conn.execute(
                _FIND,
                {
                    "organisation_id": caller.organisation_id,
                    "user_id": caller.user_id,
                    "method": method,
                    "path": path,
                    "key": key,
                },
            )
        ).one_or_none()
        return found

    def _replay_or_refuse(self, record: _Record, fingerprint: str) -> Response:
        if record.request_fingerprint != fingerprint:
            raise ApiError(
                422,
                f"This {IDEMPOTENCY_HEADER} was already used for a different request; "
                "use a new key for a new request",
            )
        headers = {str(k): str(v) for k, v in (record.response_headers or {}).items()}
        headers[REPLAYED_HEADER] = "true"
        return Response(
            content=record.response_body or b"",
            status_code=record.response_status or 200,
            headers=headers,
        )

    @staticmethod
    def _in_flight() -> ApiError:
        return ApiError(
            409,
            f"A request with this {IDEMPOTENCY_HEADER} is still being processed; "
            "retry shortly to receive its response",
            retryable=True,
            headers={"Retry-After": str(IN_FLIGHT_RETRY_AFTER_SECONDS)},
        )

    async def _complete(self, record_id: uuid.UUID, response: Response) -> None:
        body = response.body
        if not isinstance(body, bytes | bytearray | memoryview):
            raise TypeError("idempotent routes must return a Response with a body in memory")
        headers = {k: v for k, v in response.headers.items() if k not in _UNSTORED_HEADERS}
        now = utc_now()
        conn = await self.session.connection()
        await conn.execute(
            _COMPLETE,
            {
                "record_id": record_id,
                "v_status": response.status_code,
                "v_body": bytes(body),
                "v_headers": headers,
                "v_expires_at": now + timedelta(seconds=self.settings.idempotency_ttl_seconds),
                "v_now": now,
            },
        )


_KEY_DESCRIPTION = (
    "1-255 printable ASCII characters, bare or as a quoted structured-field string. "
    "Scoped to the caller and the request path; a retry with the same key and body "
    "replays the stored response with `Idempotent-Replayed: true`."
)


async def idempotency_required(
    request: Request,
    session: AsyncSession = Depends(get_db),
    # Optional for FastAPI so that a missing key is our 400, not a generic 422.
    idempotency_key: str | None = Header(
        default=None,
        alias=IDEMPOTENCY_HEADER,
        description="**Required** (missing: 400). " + _KEY_DESCRIPTION,
    ),
) -> IdempotentRequest:
    """Dependency for routes where the key is mandatory (missing → 400)."""
    return IdempotentRequest(request, session, _header_key(request, required=True))


async def idempotency_optional(
    request: Request,
    session: AsyncSession = Depends(get_db),
    idempotency_key: str | None = Header(
        default=None, alias=IDEMPOTENCY_HEADER, description=_KEY_DESCRIPTION
    ),
) -> IdempotentRequest:
    """Dependency for routes that honour a key when one is sent."""
    return IdempotentRequest(request, session, _header_key(request, required=False))
