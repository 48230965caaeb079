"""Managing an organisation's users: create, list, change role or active flag.

The rule that matters here: no change may leave an organisation without an active admin.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.core import audit
from src.app.core.clock import utc_now
from src.app.core.errors import ApiError
from src.app.core.settings import Settings
from src.app.core.tenancy import Principal, Role, scoped
from src.app.core.transactions import begin_write
from src.app.identity.models import User
from src.app.identity.passwords import hash_password
from src.app.identity.revocation import RevocationChecker
from src.app.identity.revocations import publish_or_503
from src.app.identity.service import EmailTaken, create_user, revoke_all_tokens

logger = logging.getLogger("firemode.identity")

EMAIL_TAKEN = "A user with this email already exists"
ACTOR_NOT_ADMIN = (
    "You are no longer an active admin (your role or active flag changed meanwhile); "
    "nothing was changed"
)
SELF_DEMOTION = "An admin cannot demote or deactivate themselves; ask another admin"
LAST_ADMIN = "This change would leave the organisation without an active admin"


async def hash_new_password(settings: Settings, password: str) -> str:
    """Hash before the write transaction starts: it takes a tenth of a second."""
    return await hash_password(password, max_concurrent=settings.max_concurrent_password_hashes)


async def create(
    db: AsyncSession, *, principal: Principal, email: str, password_hash: str, role: Role
) -> User:
    """A new user in the caller's organisation (flushed, not committed); 409 when the
    email is taken anywhere in FireMode."""
    try:
        user = await create_user(
            db,
            organisation_id=principal.organisation_id,
            email=email,
            password_hash=password_hash,
            role=role,
            actor=audit.Actor.of(principal),
        )
    except EmailTaken as exc:
        raise ApiError(409, EMAIL_TAKEN) from exc
    logger.info("user created", extra={"user_id": str(user.id), "by": str(principal.user_id)})
    return user


def list_users_query(
    principal: Principal, role: Role | None, is_active: bool | None
) -> Select[Any]:
    """The organisation's users, optionally filtered (paginate orders them)."""
    statement = scoped(select(User), User, principal)
    if role is not None:
        statement = statement.where(User.role == role.value)
    if is_active is not None:
        statement = statement.where(User.is_active.is_(is_active))
    return statement


async def update(
    db: AsyncSession,
    *,
    settings: Settings,
    checker: RevocationChecker,
    principal: Principal,
    user_id: uuid.UUID,
    role: Role | None,
    is_active: bool | None,
) -> User:
    """Change a user's role or active flag (None: unchanged) and commit. A role change or
    a deactivation revokes all of the user's tokens."""
    await begin_write(db)
    # The target and the caller, locked together in id order (PostgreSQL; SQLite's write
    # lock is held already): two admins demoting each other at once are serialised, and
    # the second sees that its caller is no longer an admin.
    locked = (
        (
            await db.execute(
                scoped(select(User), User, principal)
                .where(User.id.in_({user_id, principal.user_id}))
                .order_by(User.id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        )
        .scalars()
        .all()
    )
    by_id: dict[uuid.UUID, User] = {row.id: row for row in locked}
    user = by_id.get(user_id)
    if user is None:
        raise ApiError(404, f"User {user_id} does not exist")
    actor = by_id.get(principal.user_id)
    if actor is None or actor.role != Role.admin.value or not actor.is_active:
        raise ApiError(409, ACTOR_NOT_ADMIN)
    role_changed = role is not None and role.value != user.role
    deactivate = is_active is False and user.is_active
    reactivate = is_active is True and not user.is_active
    if user.id == principal.user_id and (
        (role is not None and role is not Role.admin) or is_active is False
    ):
        raise ApiError(409, SELF_DEMOTION)
    if not (role_changed or deactivate or reactivate):
        return user
    loses_admin = user.role == Role.admin.value and user.is_active and (role_changed or deactivate)
    if loses_admin and not await _other_active_admins(db, user):
        raise ApiError(409, LAST_ADMIN)
    now = utc_now()
    if role is not None:
        user.role = role.value
    if is_active is not None:
        user.is_active = is_active
    user.updated_at = now
    if role_changed or deactivate:
        await revoke_all_tokens(
            db,
            settings,
            user,
            now=now,
            revoked_by=principal.user_id,
            reason="user deactivated" if deactivate else "role changed",
        )
    await audit.record_by(
        db,
        principal,
        "user.updated",
        "user",
        user.id,
        {
            "changes": {
                **({"role": user.role} if role_changed else {}),
                **({"is_active": user.is_active} if deactivate or reactivate else {}),
            },
            "tokens_revoked": role_changed or deactivate,
        },
    )
    # Reactivation too: Redis must not keep saying "inactive" after the database says not.
    await publish_or_503(db, checker, users=[user])
    await db.commit()
    logger.info(
        "user updated",
        extra={
            "user_id": str(user.id),
            "by": str(principal.user_id),
            "role": user.role,
            "is_active": user.is_active,
        },
    )
    return user


async def _other_active_admins(db: AsyncSession, user: User) -> int:
    """Active admins of ``user``'s organisation besides ``user``."""
    count = await db.scalar(
        select(func.count())
        .select_from(User)
        .where(
            User.organisation_id == user.organisation_id,
            User.role == Role.admin.value,
            User.is_active.is_(True),
            User.id != user.id,
        )
    )
    return int(count or 0)
