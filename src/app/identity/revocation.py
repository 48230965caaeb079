"""The revocation check every authenticated request passes through.

The database is the record (the ``revoked_tokens`` list, ``users.is_active`` and
``users.tokens_valid_after``). With ``FIREMODE_REDIS_URL`` set, every revocation is also
written to Redis (before the database commit; a failed write rolls the revocation back
and answers 503) and the check asks Redis first, so that it takes effect at once
on every process without a database round trip per request:

- ``rtl:jti:<jti>``: a revoked access token, expiring with the token.
- ``rtl:user:<id>``: ``<version>|<active 0/1>|<tokens valid after, µs>``, the user's state,
  kept for one access-token lifetime after its last change (afterwards every token it
  could refuse has expired). Written with a version check, so an older write never
  replaces a newer one.
- ``rtl:synced``: present while Redis is known to hold every revocation. It expires every
  ``FIREMODE_REDIS_RESYNC_SECONDS`` and is deleted when a write-through fails; while it is
  missing the check asks the database, and the first request that finds it missing
  reloads the live revocations from the database and sets it again. So a revocation lost
  by Redis (restart, flush, failed write) is refused by the database path meanwhile and
  is back in Redis within one resync interval at worst.

If Redis fails the check falls back to the database; if the database fails too, the
request gets 503: never a pass.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from fastapi import Request
from redis.asyncio import Redis
from sqlalchemy import Table, bindparam, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.core.clock import utc_now
from src.app.core.db_errors import is_database_unavailable
from src.app.core.errors import ApiError
from src.app.core.settings import Settings
from src.app.identity.models import RevokedToken, User
from src.app.identity.redis_store import RedisStore, RedisUnavailable
from src.app.identity.tokens import AccessClaims, from_epoch_us, to_epoch_us

logger = logging.getLogger("firemode.identity.revocation")

TOKEN_REVOKED = "The access token has been revoked"  # noqa: S105  (a message)
USER_UNKNOWN = "The access token's user does not exist"
USER_DEACTIVATED = "The user is deactivated"
ALL_REVOKED = "The access token was revoked (all of the user's tokens were revoked)"

# Margin on top of the access-token lifetime for keys that must outlive every token they
# can refuse (clock differences between processes, the decode leeway).
_HORIZON_MARGIN_SECONDS = 60

# Sets the user's state unless Redis already holds a newer version of it.
_SET_IF_NEWER = """
local current = redis.call('GET', KEYS[1])
if current then
  local version = tonumber(string.match(current, '^(%d+)'))
  if version and version > tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""


_USERS = cast(Table, User.__table__)
_REVOKED = cast(Table, RevokedToken.__table__)
# One round trip for the whole check (the user's state and the token's jti), built once.
_CHECK_STATEMENT = select(
    _USERS.c.organisation_id,
    _USERS.c.is_active,
    _USERS.c.tokens_valid_after,
    exists().where(_REVOKED.c.jti == bindparam("jti")),
).where(_USERS.c.id == bindparam("user_id"))


def passes_sql(*, jti: str, user_id: str, organisation_id: str, issued_at: str) -> str:
    """The database check as one SQL condition, true when the token may pass, over the
    given placeholders: for a write that checks revocation in its own statement (the
    results write path), so that the check costs no round trip and sees the same
    snapshot as the write. Same rule as :func:`refusal_reason` with the database's data;
    when it is false, :meth:`RevocationChecker.database_refusal` says why."""
    # Placeholder names only, never values.
    return (
        f"NOT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = {jti})"  # noqa: S608
        f" AND EXISTS (SELECT 1 FROM users WHERE id = {user_id}"
        f" AND organisation_id = {organisation_id} AND is_active"
        f" AND (tokens_valid_after IS NULL OR tokens_valid_after < {issued_at}))"
    )


@dataclass(frozen=True, slots=True)
class UserState:
    is_active: bool
    tokens_valid_after: datetime | None


def refusal_reason(*, jti_revoked: bool, user: UserState | None, issued_at: datetime) -> str | None:
    """Pure decision shared by the Redis and the database paths.

    ``user`` None means "nothing recorded against the user". The revoke-all comparison is
    at microsecond precision on both sides: a token issued at or before the revoke-all
    instant is refused, one issued after it (even within the same second) passes.
    """
    if jti_revoked:
        return TOKEN_REVOKED
    if user is None:
        return None
    if not user.is_active:
        return USER_DEACTIVATED
    if user.tokens_valid_after is not None and issued_at <= user.tokens_valid_after:
        return ALL_REVOKED
    return None


def encode_user_state(version: datetime, state: UserState) -> str:
    valid_after = state.tokens_valid_after
    return "|".join(
        (
            str(to_epoch_us(version)),
            "1" if state.is_active else "0",
            "" if valid_after is None else str(to_epoch_us(valid_after)),
        )
    )


def decode_user_state(raw: bytes | str | None) -> UserState | None:
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode()
    try:
        _version, active, valid_after = raw.split("|")
        return UserState(
            is_active=active == "1",
            tokens_valid_after=from_epoch_us(int(valid_after)) if valid_after else None,
        )
    except ValueError:
        # Unreadable state must not read as "nothing recorded": refuse via the database.
        raise RedisUnavailable("unreadable user state in Redis") from None


class RevocationChecker:
    """The RTL by ``jti``, the user's active flag and the user's revoke-all time."""

    def __init__(self, settings: Settings | None = None, redis: RedisStore | None = None):
        self.settings = settings
        self.redis = redis
        self._resync_needed = False  # a write-through failed: invalidate Redis at next contact
        self._resyncing = False

    # -- the check -------------------------------------------------------------------

    async def refusal(self, db: AsyncSession, claims: AccessClaims) -> str | None:
        """Why the token must be refused, or None when it may pass."""
        answer: object = _UNKNOWN
        if self.redis is not None:
            try:
                answer = await self._redis_refusal(self.redis, claims)
            except RedisUnavailable:
                answer = _UNKNOWN
            if answer is _PASS:
                return None
            if isinstance(answer, str):
                return answer
        try:
            reason = await self.database_refusal(db, claims)
        except Exception as exc:
            if is_database_unavailable(exc):
                raise ApiError(
                    503,
                    "Cannot check the access token's revocation status right now",
                    headers={"Retry-After": "1"},
                ) from exc
            raise
        if answer is _UNSYNCED and self.redis is not None:
            await self._resync(self.redis, db)
        return reason

    async def _redis_refusal(self, store: RedisStore, claims: AccessClaims) -> object:
        marker = store.key("rtl", "synced")
        if self._resync_needed:
            await store.run(lambda r: r.delete(marker))
            self._resync_needed = False
            return _UNSYNCED
        keys = [marker, store.key("rtl", "jti", claims.jti), self._user_key(store, claims.user_id)]
        synced, jti_flag, user_raw = await store.run(lambda r: r.mget(keys))
        if synced is None:
            return _UNSYNCED
        reason = refusal_reason(
            jti_revoked=jti_flag is not None,
            user=decode_user_state(user_raw),
            issued_at=claims.issued_at,
        )
        return _PASS if reason is None else reason

    async def database_refusal(self, db: AsyncSession, claims: AccessClaims) -> str | None:
        # Core on the connection, not the entity: the request's identity map must not hold
        # a User loaded here, or a handler's later SELECT ... FOR UPDATE would hand back
        # stale values.
        conn = await db.connection()
        row = (
            await conn.execute(_CHECK_STATEMENT, {"user_id": claims.user_id, "jti": claims.jti})
        ).first()
        if row is None or row[0] != claims.organisation_id:
            return USER_UNKNOWN
        return refusal_reason(
            jti_revoked=bool(row[3]),
            user=UserState(is_active=bool(row[1]), tokens_valid_after=row[2]),
            issued_at=claims.issued_at,
        )

    # -- write-through (called BEFORE the database transaction commits) -----------------
    # Raises RedisUnavailable when Redis is configured and did not take the write: the
    # caller rolls back and answers 503, so that no revocation is seen by only some
    # processes (those asking the database) and missed by the others (trusting Redis).

    async def publish(
        self, *, tokens: Iterable[tuple[str, datetime]] = (), users: Iterable[User] = ()
    ) -> None:
        """Write a batch of revocations in one round trip (one MULTI/EXEC pipeline):
        revoked access tokens ``(jti, expires_at)``, kept until their own expiry plus the
        decode leeway, and users' active flag and revoke-all time, versioned by
        ``updated_at``."""
        store = self.redis
        if store is None:
            return
        token_writes = [
            (store.key("rtl", "jti", jti), self._ms_until(expires_at + self._leeway_delta()))
            for jti, expires_at in tokens
        ]
        horizon_ms = str(self._horizon_seconds() * 1000)
        user_writes = [
            (
                self._user_key(store, user.id),
                str(to_epoch_us(user.updated_at)),
                encode_user_state(
                    user.updated_at, UserState(user.is_active, user.tokens_valid_after)
                ),
            )
            for user in users
        ]
        if not token_writes and not user_writes:
            return

        async def write(redis: Redis) -> None:
            async with redis.pipeline(transaction=True) as pipe:
                for key, version, value in user_writes:
                    pipe.eval(_SET_IF_NEWER, 1, key, version, value, horizon_ms)
                for key, ttl_ms in token_writes:
                    pipe.set(key, "1", px=ttl_ms)
                await pipe.execute()

        await self._write(store, write)

    async def _write(self, store: RedisStore, operation: Any) -> None:
        try:
            # Past the back-off: revocations are rare, and one must not be refused with
            # 503 just because a read failed a moment ago.
            await store.run(operation, ignore_backoff=True)
        except RedisUnavailable:
            # Should the caller commit anyway (reuse detection does), distrust Redis
            # at the next contact; otherwise harmless (a resync).
            self._resync_needed = True
            logger.warning("revocation not written to redis")
            raise

    # -- resync ----------------------------------------------------------------------

    async def _resync(self, store: RedisStore, db: AsyncSession) -> None:
        """Reload every live revocation from the database, then mark Redis as synced."""
        if self._resyncing:
            return
        self._resyncing = True
        try:
            now = utc_now()
            horizon_start = now - timedelta(seconds=self._horizon_seconds())
            tokens = (
                await db.execute(
                    select(RevokedToken.jti, RevokedToken.expires_at).where(
                        RevokedToken.jti.is_not(None), RevokedToken.expires_at > now
                    )
                )
            ).all()
            users = (
                await db.execute(
                    select(User.id, User.updated_at, User.is_active, User.tokens_valid_after).where(
                        User.updated_at > horizon_start
                    )
                )
            ).all()
            leeway = timedelta(seconds=self._leeway())
            horizon_ms = str(self._horizon_seconds() * 1000)
            marker = store.key("rtl", "synced")
            interval_ms = self._resync_interval_seconds() * 1000

            async def load(redis: Redis) -> None:
                async with redis.pipeline(transaction=False) as pipe:
                    for jti, expires_at in tokens:
                        if not jti:
                            continue
                        ttl_ms = self._ms_until(expires_at + leeway)
                        pipe.set(store.key("rtl", "jti", jti), "1", px=ttl_ms)
                    for user_id, updated_at, is_active, valid_after in users:
                        value = encode_user_state(updated_at, UserState(is_active, valid_after))
                        pipe.eval(
                            _SET_IF_NEWER,
                            1,
                            self._user_key(store, user_id),
                            str(to_epoch_us(updated_at)),
                            value,
                            horizon_ms,
                        )
                    pipe.set(marker, to_epoch_us(now), px=interval_ms)
                    await pipe.execute()

            await store.run(load)
            logger.info(
                "revocation cache resynced from the database",
                extra={"tokens": len(tokens), "users": len(users)},
            )
        except RedisUnavailable:
            pass
        except Exception as exc:
            if not is_database_unavailable(exc):
                raise
            logger.warning("revocation cache resync skipped: database unavailable")
        finally:
            self._resyncing = False

    # -- helpers ---------------------------------------------------------------------

    @staticmethod
    def _user_key(store: RedisStore, user_id: uuid.UUID) -> str:
        return store.key("rtl", "user", str(user_id))

    def _leeway(self) -> int:
        return self.settings.jwt_leeway_seconds if self.settings else 0

    def _leeway_delta(self) -> timedelta:
        return timedelta(seconds=self._leeway())

    def _horizon_seconds(self) -> int:
        ttl = self.settings.access_token_ttl_seconds if self.settings else 3600
        return ttl + self._leeway() + _HORIZON_MARGIN_SECONDS

    def _resync_interval_seconds(self) -> int:
        return self.settings.redis_resync_seconds if self.settings else 60

    @staticmethod
    def _ms_until(instant: datetime) -> int:
        return max(1000, int((instant - utc_now()).total_seconds() * 1000))

    async def aclose(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()


_UNKNOWN = object()  # Redis did not answer: ask the database
_UNSYNCED = object()  # Redis answered but is not known to be complete: database, then resync
_PASS = object()


def build_revocation_checker(settings: Settings) -> RevocationChecker:
    return RevocationChecker(settings, RedisStore.from_settings(settings))


_default_checker = RevocationChecker()


async def get_revocation_checker(request: Request) -> RevocationChecker:
    checker: RevocationChecker = getattr(request.app.state, "revocation_checker", _default_checker)
    return checker
