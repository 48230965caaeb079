"""Sessions of a login: log in, refresh (rotation with reuse detection), log out.

Each flow owns its request's write transaction and commits it; the routes only parse the
request and shape the answer.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import NoReturn

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.core import audit
from src.app.core.clock import utc_now
from src.app.core.errors import ApiError
from src.app.core.settings import Settings
from src.app.core.tenancy import Principal
from src.app.core.transactions import begin_write
from src.app.identity.models import RefreshToken, User
from src.app.identity.passwords import verify_password
from src.app.identity.redis_store import RedisUnavailable
from src.app.identity.revocation import RevocationChecker
from src.app.identity.revocations import publish, publish_or_503
from src.app.identity.service import (
    IssuedSession,
    RevokedAccess,
    add_to_revocation_list,
    claim_refresh_token,
    family_has_live_token,
    find_refresh_token,
    find_user_by_email,
    revoke_families,
    revoke_successors,
    start_session,
    unused_successors,
    within_reuse_grace,
)
from src.app.identity.throttle import LoginThrottle, throttle_keys

logger = logging.getLogger("firemode.identity")

INVALID_CREDENTIALS = "The email or password is incorrect"
INVALID_REFRESH = "The refresh token is invalid, expired or revoked"
REFRESH_REUSED = "The refresh token was already used; its session has been revoked. Log in again"
WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="firemode"'}


def _unauthorized(detail: str) -> ApiError:
    return ApiError(401, detail, headers=WWW_AUTHENTICATE)


async def log_in(
    db: AsyncSession,
    *,
    settings: Settings,
    throttle: LoginThrottle,
    email: str,
    password: str,
    client: str | None,
) -> IssuedSession:
    """A new login session for valid credentials (``email`` normalised); 401 otherwise,
    429 while the email or the client address is throttled."""
    reservation = await throttle.reserve(db, throttle_keys(email, client))
    if reservation.retry_after is not None:
        logger.warning("login throttled", extra={"client": client})
        raise ApiError(
            429,
            f"Too many failed logins; try again in {reservation.retry_after} seconds",
            headers={"Retry-After": str(reservation.retry_after)},
        )
    user = await find_user_by_email(db, email)
    valid, new_hash = await verify_password(
        password,
        user.password_hash if user is not None else None,
        max_concurrent=settings.max_concurrent_password_hashes,
    )
    if user is None or not valid or not user.is_active:
        # The reserved failure stays: it is this attempt's record.
        logger.info(
            "login failed",
            extra={"user_id": str(user.id) if user else None, "client": client},
        )
        raise _unauthorized(INVALID_CREDENTIALS)
    # A write transaction from here (SQLite: take the write lock before writing).
    await begin_write(db)
    await throttle.succeeded(db, reservation)
    if new_hash is not None:
        user.password_hash = new_hash  # the hashing parameters changed since it was set
    issued = start_session(db, settings, user, now=utc_now())
    await audit.record(
        db,
        organisation_id=user.organisation_id,
        actor=audit.Actor.user(user.id),
        action="auth.login",
        subject_type="user",
        subject_id=user.id,
        payload={"jti": issued.access.claims.jti, "client": client},
    )
    await db.commit()
    logger.info("login succeeded", extra={"user_id": str(user.id), "client": client})
    return issued


async def refresh(
    db: AsyncSession, *, settings: Settings, checker: RevocationChecker, token: str
) -> IssuedSession:
    """Rotate a refresh token: a new pair, the presented token used up. A token presented
    again revokes its family, unless it is a client's retry within the grace interval."""
    await begin_write(db)
    now = utc_now()
    # Locked on PostgreSQL, so a concurrent use of the same token waits and then sees it used.
    row = await find_refresh_token(db, token, for_update=True)
    if row is None:
        raise _unauthorized(INVALID_REFRESH)
    if row.revoked_at is not None:
        if await family_has_live_token(db, row.family_id, now):
            # Only a successor replaced by a retry is revoked alone while its family lives
            # on: whoever presents it received the response the retrying client had lost.
            await _reuse_detected(db, checker, row, now)
        raise _unauthorized(INVALID_REFRESH)
    successors: list[RefreshToken] | None = None
    if row.used_at is not None:
        grace = settings.refresh_reuse_grace_seconds
        if within_reuse_grace(row.used_at, now=now, grace_seconds=grace):
            successors = await unused_successors(db, row)
        if successors is None:
            await _reuse_detected(db, checker, row, now)
    user = await db.get(User, row.user_id)
    if row.expires_at <= now or user is None or not user.is_active:
        raise _unauthorized(INVALID_REFRESH)
    if successors is not None:
        replaced = await revoke_successors(
            db,
            successors,
            now=now,
            user=(row.organisation_id, row.user_id),
            reason="refresh retried: unused successor replaced",
        )
        if replaced is None:  # the successor was used meanwhile (SQLite has no lock)
            await _reuse_detected(db, checker, row, now)
        await publish_or_503(db, checker, tokens=replaced)
        logger.info(
            "refresh retried within the grace interval: unused successor revoked",
            extra={"user_id": str(row.user_id), "family_id": str(row.family_id)},
        )
    elif not await claim_refresh_token(db, row, now):  # used meanwhile (SQLite has no lock)
        await _reuse_detected(db, checker, row, now)
    issued = start_session(db, settings, user, now=now, family_id=row.family_id, parent_id=row.id)
    await db.commit()
    return issued


async def _reuse_detected(
    db: AsyncSession, checker: RevocationChecker, row: RefreshToken, now: datetime
) -> NoReturn:
    """Revoke the whole family of a reused refresh token, commit, and answer 401."""
    family_id, user = row.family_id, (row.organisation_id, row.user_id)
    await db.rollback()  # releases the row lock; expires ``row``
    await begin_write(db)
    entries = await revoke_families(
        db,
        {family_id},
        now=now,
        user=user,
        revoked_by=None,
        reason="refresh token reuse detected",
    )
    try:
        await publish(checker, tokens=entries)
    except RedisUnavailable:
        # Fail towards revoking: commit anyway. Every refresh reads the database, so the
        # family's refresh tokens are dead everywhere at once; only its still-live access
        # tokens may pass on processes trusting Redis until the next resync. Rolling back
        # instead would leave the thief a working refresh token.
        logger.warning(
            "refresh token reuse: family revoked in the database only (redis unavailable)",
            extra={"user_id": str(user[1]), "family_id": str(family_id)},
        )
    await audit.record(
        db,
        organisation_id=user[0],
        actor=audit.SYSTEM,
        action="auth.refresh_reuse_revoked",
        subject_type="user",
        subject_id=user[1],
        payload={"family_id": family_id, "access_tokens_revoked": len(entries)},
    )
    await db.commit()
    logger.warning(
        "refresh token reuse detected: family revoked",
        extra={"user_id": str(user[1]), "family_id": str(family_id)},
    )
    raise _unauthorized(REFRESH_REUSED)


async def log_out(
    db: AsyncSession,
    *,
    checker: RevocationChecker,
    principal: Principal,
    refresh_token: str | None,
) -> None:
    """End the caller's session: its access token and refresh-token family, and the
    family of ``refresh_token`` when it is the caller's (anything else is ignored)."""
    await begin_write(db)
    now = utc_now()
    families: set[uuid.UUID] = set()
    own = await db.execute(
        select(RefreshToken.family_id).where(
            RefreshToken.access_jti == principal.jti,
            RefreshToken.user_id == principal.user_id,
        )
    )
    families.update(own.scalars().all())
    if refresh_token is not None:
        given = await find_refresh_token(db, refresh_token)
        if given is not None and given.user_id == principal.user_id:
            families.add(given.family_id)
    user = (principal.organisation_id, principal.user_id)
    current = RevokedAccess(principal.jti, principal.token_expires_at)
    await add_to_revocation_list(
        db, [current], user=user, revoked_by=principal.user_id, reason="logout", now=now
    )
    entries = await revoke_families(
        db, families, now=now, user=user, revoked_by=principal.user_id, reason="logout"
    )
    await audit.record_by(
        db,
        principal,
        "auth.logout",
        "user",
        principal.user_id,
        {"jti": principal.jti, "families_revoked": len(families)},
    )
    await publish_or_503(db, checker, tokens=[current, *entries])
    await db.commit()
    logger.info("logout", extra={"user_id": str(principal.user_id)})
