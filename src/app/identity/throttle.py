"""Login throttling: at most N failed logins per window per email, and (a larger) M per
client address (``FIREMODE_LOGIN_MAX_FAILURES`` / ``..._PER_ADDRESS``).

An attempt first *reserves* a failure under each of its keys and only then counts: so a
burst of parallel guesses sees its own reservations and cannot slip past the limit while
the password hashes are still running. A correct password releases the reservation and
clears the email's failures; a wrong one leaves it standing as the recorded failure. An
attempt refused with 429 records nothing (its password was never looked at).

Counted in Redis (one sorted set per key) when configured, in the ``login_failures``
table otherwise, and in the table as well whenever Redis does not answer.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.core.clock import utc_now
from src.app.core.settings import Settings
from src.app.core.transactions import begin_write
from src.app.identity.models import LoginFailure
from src.app.identity.redis_store import RedisStore, RedisUnavailable


def throttle_keys(email: str, client_address: str | None) -> tuple[str, str]:
    """The email is hashed: people type passwords into the email field."""
    email_key = "email:" + hashlib.sha256(email.encode()).hexdigest()[:40]
    return email_key, "ip:" + (client_address or "unknown")[:300]


def retry_after_seconds(
    failures: Sequence[datetime], *, now: datetime, window_seconds: int, max_failures: int
) -> int | None:
    """Seconds until one more attempt is allowed, or None when one is allowed now.

    ``failures`` are the recorded failures of one key inside the window, oldest first.
    Another attempt is allowed once fewer than ``max_failures`` remain in the window.
    """
    if len(failures) < max_failures:
        return None
    frees_up = failures[len(failures) - max_failures] + timedelta(seconds=window_seconds)
    return max(1, math.ceil((frees_up - now).total_seconds()))


@dataclass
class Reservation:
    """One attempt's reserved failures (their ids), and how long to wait if refused."""

    keys: tuple[str, str]
    backend: str
    ids: list[str] = field(default_factory=list)
    retry_after: int | None = None


class LoginThrottle:
    def __init__(self, settings: Settings, redis: RedisStore | None) -> None:
        self.settings = settings
        self.redis = redis

    @property
    def _window(self) -> int:
        return self.settings.login_window_seconds

    @property
    def _limits(self) -> tuple[int, int]:
        """The limits of the keys, in ``throttle_keys`` order: (email, address)."""
        return self.settings.login_max_failures, self.settings.login_max_failures_per_address

    async def reserve(self, session: AsyncSession, keys: tuple[str, str]) -> Reservation:
        """Reserve a failure under each key; ``retry_after`` is set when over the limit
        (and then nothing stays reserved)."""
        if self.redis is not None:
            try:
                return await self._reserve_redis(self.redis, keys)
            except RedisUnavailable:
                pass
        return await self._reserve_database(session, keys)

    async def succeeded(self, session: AsyncSession, reservation: Reservation) -> None:
        """Correct password: drop this attempt's reservation and the email's failures.
        Database work joins the caller's transaction (the caller commits)."""
        email_key, ip_key = reservation.keys
        if reservation.backend == "redis" and self.redis is not None:
            member = reservation.ids[0]
            try:
                await self.redis.run(lambda r: _redis_release(r, self._rkey(ip_key), member=member))
                await self.redis.run(lambda r: r.delete(self._rkey(email_key)))
            except RedisUnavailable:
                pass  # the reserved failure stays counted until it leaves the window
            return
        ids = [uuid.UUID(value) for value in reservation.ids]
        await session.execute(delete(LoginFailure).where(LoginFailure.id.in_(ids)))
        await session.execute(delete(LoginFailure).where(LoginFailure.throttle_key == email_key))

    # -- database --------------------------------------------------------------------

    async def _reserve_database(self, session: AsyncSession, keys: tuple[str, str]) -> Reservation:
        now = utc_now()
        rows = [LoginFailure(id=uuid.uuid4(), throttle_key=key, created_at=now) for key in keys]
        session.add_all(rows)
        await session.commit()
        mine = {row.id for row in rows}
        window_start = now - timedelta(seconds=self._window)
        found = (
            await session.execute(
                select(LoginFailure.id, LoginFailure.throttle_key, LoginFailure.created_at)
                .where(
                    LoginFailure.throttle_key.in_(keys),
                    LoginFailure.created_at > window_start,
                )
                .order_by(LoginFailure.created_at, LoginFailure.id)
            )
        ).all()
        others: dict[str, list[datetime]] = {key: [] for key in keys}
        for row_id, key, created_at in found:
            if row_id not in mine:
                others[key].append(created_at)
        reservation = Reservation(keys, "database", [str(row.id) for row in rows])
        reservation.retry_after = self._longest_wait(others.values(), now)
        if reservation.retry_after is not None:
            await begin_write(session)
            await session.execute(delete(LoginFailure).where(LoginFailure.id.in_(mine)))
            await session.commit()
            reservation.ids = []
        return reservation

    # -- redis -----------------------------------------------------------------------

    def _rkey(self, key: str) -> str:
        assert self.redis is not None
        return self.redis.key("login", key)

    async def _reserve_redis(self, store: RedisStore, keys: tuple[str, str]) -> Reservation:
        now = utc_now()
        score = now.timestamp()
        member = uuid.uuid4().hex
        redis_keys = [self._rkey(key) for key in keys]
        window_ms = self._window * 1000

        async def reserve(redis: Redis) -> list[object]:
            async with redis.pipeline(transaction=True) as pipe:
                for key in redis_keys:
                    pipe.zremrangebyscore(key, "-inf", score - self._window)
                    pipe.zadd(key, {member: score})
                    pipe.zrange(key, 0, -1, withscores=True)
                    pipe.pexpire(key, window_ms)
                return list(await pipe.execute())

        results = await store.run(reserve)
        others: list[list[datetime]] = []
        for index in range(len(redis_keys)):
            entries = results[index * 4 + 2]
            assert isinstance(entries, list)
            others.append(
                [
                    datetime.fromtimestamp(float(entry_score), now.tzinfo)
                    for entry_member, entry_score in entries
                    if entry_member != member
                ]
            )
        reservation = Reservation(keys, "redis", [member])
        reservation.retry_after = self._longest_wait(others, now)
        if reservation.retry_after is not None:
            await store.run(lambda r: _redis_release(r, *redis_keys, member=member))
            reservation.ids = []
        return reservation

    def _longest_wait(self, per_key: Iterable[Sequence[datetime]], now: datetime) -> int | None:
        """``per_key``: the other failures of each key, in ``throttle_keys`` order."""
        waits = [
            retry_after_seconds(
                sorted(failures), now=now, window_seconds=self._window, max_failures=limit
            )
            for failures, limit in zip(per_key, self._limits, strict=True)
        ]
        known = [wait for wait in waits if wait is not None]
        return max(known) if known else None


async def _redis_release(redis: Redis, *keys: str, member: str) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        for key in keys:
            pipe.zrem(key, member)
        await pipe.execute()
