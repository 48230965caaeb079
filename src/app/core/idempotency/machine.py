"""The idempotency state machine: claim a key, run the work, store its outcome; or replay.

How to use it and why it is built this way: docs/idempotency.md.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from src.app.core.clock import utc_now
from src.app.core.errors import ApiError
from src.app.core.idempotency import store
from src.app.core.idempotency.fingerprint import fingerprint_of
from src.app.core.idempotency.headers import IDEMPOTENCY_HEADER, REPLAYED_HEADER
from src.app.core.settings import Settings
from src.app.core.transactions import begin_write

MAX_STORED_PATH = 1024  # idempotency_records.path
IN_FLIGHT_RETRY_AFTER_SECONDS = 1
IDEMPOTENCY_ERROR_STATUSES = (400, 409, 422)
"""What a route using the mechanism adds to its ``responses=error_responses(...)``."""

# Headers a replay must not copy: recomputed for the new response, or per-request.
UNSTORED_HEADERS = frozenset({"content-length", "x-transaction-id", "date", "server"})

Work = Callable[[], Awaitable[Response]]
Scope = tuple[str, str, str, str, str]


class Caller(Protocol):
    """Whom a key belongs to; ``core.tenancy.Principal`` is one."""

    @property
    def user_id(self) -> uuid.UUID: ...

    @property
    def organisation_id(self) -> uuid.UUID: ...


def in_flight() -> ApiError:
    """The answer while the first request with the key is still running."""
    return ApiError(
        409,
        f"A request with this {IDEMPOTENCY_HEADER} is still being processed; "
        "retry shortly to receive its response",
        retryable=True,
        headers={"Retry-After": str(IN_FLIGHT_RETRY_AFTER_SECONDS)},
    )


def key_reused() -> ApiError:
    """The answer to the same key with another request."""
    return ApiError(
        422,
        f"This {IDEMPOTENCY_HEADER} was already used for a different request; "
        "use a new key for a new request",
    )


def replay(status: int | None, body: bytes, headers: Mapping[str, Any] | None) -> Response:
    """The stored response again, marked as a replay."""
    out = {str(k): str(v) for k, v in (headers or {}).items()}
    out[REPLAYED_HEADER] = "true"
    return Response(content=body, status_code=status or 200, headers=out)


def stored_headers(response: Response) -> dict[str, str]:
    """The headers of ``response`` that a replay repeats."""
    return {k: v for k, v in response.headers.items() if k not in UNSTORED_HEADERS}


@dataclass(frozen=True, slots=True)
class Claim:
    """Everything a statement needs to claim a key itself (see docs/idempotency.md)."""

    scope: Scope
    fingerprint: str
    lock_id: int
    now: datetime
    expires_at: datetime


def key_scope(request: Request, key: str, caller: Caller) -> Scope:
    """(organisation, user, method, path, key): what a key is unique within."""
    path = request.url.path
    if len(path) > MAX_STORED_PATH:
        # Fits the column and stays distinct from every other path.
        path = "sha256:" + hashlib.sha256(path.encode("utf-8", "surrogatepass")).hexdigest()
    return (
        str(caller.organisation_id),
        str(caller.user_id),
        request.method.upper(),
        path,
        key,
    )


async def claim_of(
    request: Request, key: str, caller: Caller, *, fingerprint: str | None = None
) -> Claim:
    """The claim parameters of ``key``, for a statement that claims and completes it
    itself (no database session needed)."""
    if fingerprint is None:
        fingerprint = await fingerprint_of(request)
    scope = key_scope(request, key, caller)
    now = utc_now()
    expires_at = _expiry(request.app.state.settings, now)
    return Claim(scope, fingerprint, store.advisory_lock_id(scope), now, expires_at)


def _expiry(settings: Settings, now: datetime) -> datetime:
    """When a record claimed or completed at ``now`` expires."""
    return now + timedelta(seconds=settings.idempotency_ttl_seconds)


@dataclass(slots=True)
class IdempotentRequest:
    """A POST request with (or without) an idempotency key."""

    request: Request
    db: AsyncSession
    key: str | None

    @property
    def settings(self) -> Settings:
        settings: Settings = self.request.app.state.settings
        return settings

    def expires_at(self, now: datetime) -> datetime:
        return _expiry(self.settings, now)

    async def run(self, caller: Caller, work: Work, *, fingerprint: str | None = None) -> Response:
        """Claim the key, run ``work``, store its response and commit; or replay.

        ``fingerprint`` overrides the body hash (e.g. for a streamed upload whose route
        hashes the content itself).
        """
        db = self.db
        await begin_write(db)
        try:
            record_id: uuid.UUID | None = None
            if self.key is not None:
                if fingerprint is None:
                    fingerprint = await fingerprint_of(self.request)
                claimed = await self._claim(caller, fingerprint)
                if isinstance(claimed, Response):
                    await db.rollback()
                    return claimed
                record_id = claimed
            response = await work()
            if response.status_code >= 400:
                await db.rollback()
                return response
            if record_id is not None:
                await self._complete(record_id, response)
            await db.commit()
        except BaseException:
            await db.rollback()
            raise
        return response

    async def has_outcome(self, caller: Caller) -> bool:
        """Whether ``run`` will replay a stored response (or refuse a different body)
        without calling ``work``: a route may then skip costly preparation that only a
        first request needs. A plain read; ``work`` must still cope if it runs after all."""
        if self.key is None:
            return False
        conn = await self.db.connection()
        existing = await store.find(
            conn, self.scope(caller), (caller.organisation_id, caller.user_id)
        )
        return (
            existing is not None
            and existing.state == "completed"
            and existing.expires_at > utc_now()
        )

    def scope(self, caller: Caller) -> Scope:
        """(organisation, user, method, path, key): what a key is unique within."""
        assert self.key is not None
        return key_scope(self.request, self.key, caller)

    async def _claim(self, caller: Caller, fingerprint: str) -> uuid.UUID | Response:
        """The new record's id, or the response to give instead (replay; 409/422 raise)."""
        conn = await self.db.connection()
        scope = self.scope(caller)
        ids = (caller.organisation_id, caller.user_id)
        lock_id = store.advisory_lock_id(scope) if conn.dialect.name == "postgresql" else None
        for _attempt in range(3):
            now = utc_now()
            params = self._claim_params(caller, scope, fingerprint, now)
            record_id = await store.insert_claim(conn, params, lock_id)
            if record_id is not None:
                return record_id
            if lock_id is not None and not await store.try_lock(conn, lock_id):
                # Another transaction holds the key: in flight, unless what it holds is
                # a replay of a committed, live outcome we may replay too.
                existing = await store.find(conn, scope, ids)
                if (
                    existing is not None
                    and existing.state == "completed"
                    and existing.expires_at > utc_now()
                ):
                    return self._replay_or_refuse(existing, fingerprint)
                raise in_flight()
            existing = await store.find(conn, scope, ids)
            if existing is None:
                continue  # rolled back or purged since the insert: claim again
            if existing.expires_at <= utc_now():
                # Expired but not purged yet: it no longer counts.
                await store.delete_record(conn, existing.id)
                continue
            if existing.state != "completed":
                raise in_flight()
            return self._replay_or_refuse(existing, fingerprint)
        raise in_flight()

    def _claim_params(
        self, caller: Caller, scope: Scope, fingerprint: str, now: datetime
    ) -> dict[str, Any]:
        _org, _user, method, path, key = scope
        return {
            "v_id": uuid.uuid4(),
            "v_organisation_id": caller.organisation_id,
            "v_user_id": caller.user_id,
            "v_method": method,
            "v_path": path,
            "v_idempotency_key": key,
            "v_request_fingerprint": fingerprint,
            "v_state": "in_progress",
            "v_expires_at": self.expires_at(now),
            "v_created_at": now,
            "v_updated_at": now,
        }

    @staticmethod
    def _replay_or_refuse(record: store.StoredRecord, fingerprint: str) -> Response:
        if record.request_fingerprint != fingerprint:
            raise key_reused()
        if record.response_document_version is not None:
            # Written by a route that stores a reference instead of its body; only that
            # route (which owns the path, hence the scope) can expand it.
            raise RuntimeError("a stored response by reference reached the generic replay")
        body = store.decode_body(record.response_body, record.response_encoding)
        return replay(record.response_status, body, record.response_headers)

    async def _complete(self, record_id: uuid.UUID, response: Response) -> None:
        body = response.body
        if not isinstance(body, bytes | bytearray | memoryview):
            raise TypeError("idempotent routes must return a Response with a body in memory")
        now = utc_now()
        conn = await self.db.connection()
        await store.complete(
            conn,
            record_id,
            status=response.status_code,
            body=bytes(body),
            headers=stored_headers(response),
            expires_at=self.expires_at(now),
            now=now,
        )
