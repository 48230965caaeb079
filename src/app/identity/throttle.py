"""Login throttling that an attacker cannot turn against the account's owner.

Three counts of failed logins inside ``FIREMODE_LOGIN_WINDOW_SECONDS`` (docs/security.md,
"Login throttling"):

- per (email, client address): ``FIREMODE_LOGIN_MAX_FAILURES`` (5), then 429 until the
  oldest failure leaves the window. Guessing one account from one address stops there,
  and nobody else's address is affected;
- per client address: ``FIREMODE_LOGIN_MAX_FAILURES_PER_ADDRESS`` (50), then 429
  (one address guessing across many accounts);
- per email, from every address: past ``FIREMODE_LOGIN_EMAIL_FREE_FAILURES`` (10), a
  progressive delay (1, 2, 4... seconds after the email's latest failure, at most
  ``FIREMODE_LOGIN_EMAIL_MAX_DELAY_SECONDS``) for addresses that have not logged in to
  that account before. An address that has (within ``FIREMODE_LOGIN_KNOWN_ADDRESS_DAYS``)
  is exempt: the owner's own device logs in during an attack from many addresses.

An attempt first *reserves* a failure under each key and only then counts, so a burst of
parallel guesses sees its own reservations. A correct password releases the reservation
and clears the (email, address) failures, not the email's: the owner logging in does not
give an attacker a fresh allowance. A refused attempt (429) records nothing.

Counted in Redis (one sorted set per key) when configured, in the ``login_failures``
table otherwise and whenever Redis does not answer. Known addresses live in the
database. The clock is injected, so tests move time instead of sleeping.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy import Delete, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.core.clock import utc_now
from src.app.core.settings import Settings
from src.app.core.transactions import begin_write
from src.app.identity.models import LoginFailure, LoginKnownAddress
from src.app.identity.redis_store import RedisStore, RedisUnavailable

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class ThrottleKeys:
    """The counters one attempt touches. Emails are hashed: people type passwords into
    the email field."""

    pair: str
    address: str
    email: str

    def all(self) -> tuple[str, str, str]:
        return self.pair, self.address, self.email


def throttle_keys(email: str, client_address: str | None) -> ThrottleKeys:
    email_hash = hashlib.sha256(email.encode()).hexdigest()[:40]
    address = (client_address or "unknown")[:300]
    pair_hash = hashlib.sha256(f"{email_hash}|{address}".encode()).hexdigest()[:40]
    return ThrottleKeys(
        pair="pair:" + pair_hash, address="ip:" + address, email="email:" + email_hash
    )


def retry_after_seconds(
    failures: Sequence[datetime], *, now: datetime, window_seconds: int, max_failures: int
) -> int | None:
    """Hard limit: seconds until one more attempt is allowed, or None when it is now.

    ``failures`` are the recorded failures of one key inside the window, oldest first.
    Another attempt is allowed once fewer than ``max_failures`` remain in the window.
    """
    if len(failures) < max_failures:
        return None
    frees_up = failures[len(failures) - max_failures] + timedelta(seconds=window_seconds)
    return max(1, math.ceil((frees_up - now).total_seconds()))


def email_delay_seconds(failures: int, *, free: int, cap: float) -> float:
    """The progressive delay after an email's latest failure: none for the first ``free``
    failures, then 1, 2, 4... seconds, never more than ``cap``."""
    if failures < free:
        return 0.0
    return float(min(cap, 2.0 ** min(failures - free, 30)))


def email_wait_seconds(
    failures: Sequence[datetime], *, now: datetime, free: int, cap: float
) -> int | None:
    """Seconds an unknown address waits before trying this email, or None."""
    if not failures:
        return None
    delay = email_delay_seconds(len(failures), free=free, cap=cap)
    remaining = (max(failures) + timedelta(seconds=delay) - now).total_seconds()
    return math.ceil(remaining) if remaining > 0 else None


@dataclass
class Reservation:
    """One attempt's reserved failures (their ids), and how long to wait if refused."""

    keys: ThrottleKeys
    backend: str
    ids: list[str] = field(default_factory=list)
    retry_after: int | None = None


class LoginThrottle:
    def __init__(self, settings: Settings, redis: RedisStore | None, clock: Clock = utc_now):
        self.settings = settings
        self.redis = redis
        self.clock = clock

    @property
    def _window(self) -> int:
        return self.settings.login_window_seconds

    async def reserve(self, db: AsyncSession, keys: ThrottleKeys) -> Reservation:
        """Reserve a failure under each key; ``retry_after`` is set when the attempt must
        wait (and then nothing stays reserved)."""
        now = self.clock()
        if self.redis is not None:
            try:
                found = await self._reserve_redis(self.redis, keys, now)
            except RedisUnavailable:
                found = None
            if found is not None:
                reservation, others = found
                await self._decide(db, reservation, others, now)
                if reservation.retry_after is not None:
                    await self._release_redis(reservation)
                return reservation
        reservation, others = await self._reserve_database(db, keys, now)
        await self._decide(db, reservation, others, now)
        if reservation.retry_after is not None:
            await begin_write(db)
            await db.execute(self._delete_reserved(reservation))
            await db.commit()
            reservation.ids = []
        return reservation

    async def succeeded(self, db: AsyncSession, reservation: Reservation) -> None:
        """Correct password: drop this attempt's reservation and the (email, address)
        failures, and remember the address for the account. Database work joins the
        caller's transaction (the caller commits)."""
        await self._remember_address(db, reservation.keys.pair)
        if reservation.backend == "redis" and self.redis is not None:
            pair = self._rkey(reservation.keys.pair)
            try:
                await self._release_redis(reservation)
                await self.redis.run(lambda r: r.delete(pair))
            except RedisUnavailable:
                pass  # the reserved failures stay counted until they leave the window
            return
        await db.execute(self._delete_reserved(reservation))
        await db.execute(
            delete(LoginFailure).where(LoginFailure.throttle_key == reservation.keys.pair)
        )

    # -- the decision ----------------------------------------------------------------

    async def _decide(
        self,
        db: AsyncSession,
        reservation: Reservation,
        others: dict[str, list[datetime]],
        now: datetime,
    ) -> None:
        """``others``: each key's failures in the window besides this attempt's own."""
        keys = reservation.keys
        settings = self.settings
        waits = [
            retry_after_seconds(
                sorted(others[key]), now=now, window_seconds=self._window, max_failures=limit
            )
            for key, limit in (
                (keys.pair, settings.login_max_failures),
                (keys.address, settings.login_max_failures_per_address),
            )
        ]
        email_wait = email_wait_seconds(
            others[keys.email],
            now=now,
            free=settings.login_email_free_failures,
            cap=settings.login_email_max_delay_seconds,
        )
        if email_wait is not None and not await self._known_address(db, keys.pair, now):
            waits.append(email_wait)
        known = [wait for wait in waits if wait is not None]
        reservation.retry_after = max(known) if known else None

    async def _known_address(self, db: AsyncSession, pair: str, now: datetime) -> bool:
        since = now - timedelta(days=self.settings.login_known_address_days)
        found = await db.execute(
            select(LoginKnownAddress.id).where(
                LoginKnownAddress.pair_key == pair, LoginKnownAddress.updated_at > since
            )
        )
        return found.first() is not None

    async def _remember_address(self, db: AsyncSession, pair: str) -> None:
        now = self.clock()
        insert = pg_insert if db.get_bind().dialect.name == "postgresql" else sqlite_insert
        await db.execute(
            insert(LoginKnownAddress)
            .values(id=uuid.uuid4(), pair_key=pair, created_at=now, updated_at=now)
            .on_conflict_do_update(index_elements=["pair_key"], set_={"updated_at": now})
        )

    @staticmethod
    def _delete_reserved(reservation: Reservation) -> Delete:
        ids = [uuid.UUID(value) for value in reservation.ids]
        return delete(LoginFailure).where(LoginFailure.id.in_(ids))

    # -- database --------------------------------------------------------------------

    async def _reserve_database(
        self, db: AsyncSession, keys: ThrottleKeys, now: datetime
    ) -> tuple[Reservation, dict[str, list[datetime]]]:
        rows = [
            LoginFailure(id=uuid.uuid4(), throttle_key=key, created_at=now) for key in keys.all()
        ]
        db.add_all(rows)
        await db.commit()
        mine = {row.id for row in rows}
        window_start = now - timedelta(seconds=self._window)
        found = (
            await db.execute(
                select(LoginFailure.id, LoginFailure.throttle_key, LoginFailure.created_at).where(
                    LoginFailure.throttle_key.in_(keys.all()),
                    LoginFailure.created_at > window_start,
                )
            )
        ).all()
        others: dict[str, list[datetime]] = {key: [] for key in keys.all()}
        for row_id, key, created_at in found:
            if row_id not in mine:
                others[key].append(created_at)
        return Reservation(keys, "database", [str(row.id) for row in rows]), others

    # -- redis -----------------------------------------------------------------------

    def _rkey(self, key: str) -> str:
        assert self.redis is not None
        return self.redis.key("login", key)

    async def _reserve_redis(
        self, store: RedisStore, keys: ThrottleKeys, now: datetime
    ) -> tuple[Reservation, dict[str, list[datetime]]]:
        score = now.timestamp()
        member = uuid.uuid4().hex
        redis_keys = [self._rkey(key) for key in keys.all()]
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
        others: dict[str, list[datetime]] = {}
        for index, key in enumerate(keys.all()):
            entries = results[index * 4 + 2]
            assert isinstance(entries, list)
            others[key] = [
                datetime.fromtimestamp(float(entry_score), now.tzinfo)
                for entry_member, entry_score in entries
                if entry_member != member
            ]
        return Reservation(keys, "redis", [member]), others

    async def _release_redis(self, reservation: Reservation) -> None:
        assert self.redis is not None
        redis_keys = [self._rkey(key) for key in reservation.keys.all()]
        member = reservation.ids[0]

        async def release(redis: Redis) -> None:
            async with redis.pipeline(transaction=True) as pipe:
                for key in redis_keys:
                    pipe.zrem(key, member)
                await pipe.execute()

        # If Redis fails, counted until it leaves the window: errs towards throttling.
        with contextlib.suppress(RedisUnavailable):
            await self.redis.run(release)
        reservation.ids = []
