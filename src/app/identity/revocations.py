"""Revoking tokens: the admins' revocations (/v1/auth/revocations), and the write-through
to Redis that every revoking flow (logout, refresh reuse, user changes) ends with.

The check every authenticated request passes lives in ``revocation.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.core import audit
from src.app.core.clock import utc_now
from src.app.core.errors import ApiError
from src.app.core.settings import Settings
from src.app.core.tenancy import Principal, get_owned, scoped
from src.app.identity.models import RefreshToken, RevokedToken, User
from src.app.identity.redis_store import RedisUnavailable
from src.app.identity.revocation import RevocationChecker
from src.app.identity.service import (
    RevokedAccess,
    add_to_revocation_list,
    revoke_all_tokens,
    revoke_families,
)

REVOCATION_NOT_RECORDED = (
    "The revocation could not be recorded: the revocation cache (Redis) did not answer, "
    "so nothing was changed. Try again"
)
DEFAULT_REASON = "revoked by an admin"


async def publish(
    checker: RevocationChecker,
    *,
    tokens: Iterable[RevokedAccess] = (),
    users: Iterable[User] = (),
) -> None:
    """Write revocations to Redis (when configured). Called inside the write transaction,
    before its commit, so that no process trusting Redis misses a committed revocation.
    Raises RedisUnavailable."""
    for user in users:
        await checker.publish_user(user)
    for entry in tokens:
        await checker.publish_token(entry.jti, entry.expires_at)


async def publish_or_503(
    db: AsyncSession,
    checker: RevocationChecker,
    *,
    tokens: Iterable[RevokedAccess] = (),
    users: Iterable[User] = (),
) -> None:
    """``publish``; if Redis does not take it, roll the revocation back and answer 503.
    (A Redis write that succeeded before a failed commit refuses tokens the database
    would still accept: fail-closed, and the retry completes it.)"""
    try:
        await publish(checker, tokens=tokens, users=users)
    except RedisUnavailable as exc:
        await db.rollback()
        raise ApiError(503, REVOCATION_NOT_RECORDED, headers={"Retry-After": "1"}) from exc


async def revoke_user(
    db: AsyncSession,
    *,
    settings: Settings,
    checker: RevocationChecker,
    principal: Principal,
    user_id: uuid.UUID,
    reason: str,
) -> RevokedToken:
    """Revoke-all for one user of the caller's organisation (404 for anyone else)."""
    now = utc_now()
    user = await get_owned(db, User, user_id, principal, what="User", for_update=True)
    record = await revoke_all_tokens(
        db, settings, user, now=now, revoked_by=principal.user_id, reason=reason
    )
    await audit.record_by(
        db, principal, "auth.all_tokens_revoked", "user", user.id, {"reason": reason}
    )
    await publish_or_503(db, checker, users=[user])
    return record


async def revoke_token(
    db: AsyncSession,
    *,
    checker: RevocationChecker,
    principal: Principal,
    jti: str,
    reason: str,
) -> tuple[RevokedToken, bool]:
    """Revoke one access token issued in the caller's organisation and the refresh-token
    family it belongs to. Returns the record and whether this call created it (False:
    the token was revoked already, nothing changed)."""
    now = utc_now()
    issued = await db.execute(
        scoped(select(RefreshToken), RefreshToken, principal).where(RefreshToken.access_jti == jti)
    )
    row = issued.scalar_one_or_none()
    if row is None or row.access_expires_at is None:
        raise ApiError(404, f"No access token with jti {jti} was issued in this organisation")
    existing = await revocation_by_jti(db, principal, jti)
    if existing is not None:
        return existing, False
    target = RevokedAccess(jti, row.access_expires_at)
    user_ref = (row.organisation_id, row.user_id)
    await add_to_revocation_list(
        db, [target], user=user_ref, revoked_by=principal.user_id, reason=reason, now=now
    )
    entries = await revoke_families(
        db,
        {row.family_id},
        now=now,
        user=user_ref,
        revoked_by=principal.user_id,
        reason=reason,
    )
    await audit.record_by(
        db, principal, "auth.token_revoked", "user", row.user_id, {"jti": jti, "reason": reason}
    )
    await publish_or_503(db, checker, tokens=[target, *entries])
    created = await revocation_by_jti(db, principal, jti)
    assert created is not None
    return created, True


async def revocation_by_jti(
    db: AsyncSession, principal: Principal, jti: str
) -> RevokedToken | None:
    found = await db.execute(
        scoped(select(RevokedToken), RevokedToken, principal).where(RevokedToken.jti == jti)
    )
    record: RevokedToken | None = found.scalar_one_or_none()
    return record


def list_revocations_query(principal: Principal, user_id: uuid.UUID | None) -> Select[Any]:
    """The organisation's revocation list, optionally one user's (paginate orders it)."""
    statement = scoped(select(RevokedToken), RevokedToken, principal)
    if user_id is not None:
        statement = statement.where(RevokedToken.user_id == user_id)
    return statement
