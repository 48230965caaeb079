"""The demo organisation: one user of each role, for a first look at the API.

Its passwords are random and shown only by the command that sets them; ``reset`` sets new
ones, so access to a demo database can always be recovered.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.core.clock import utc_now
from src.app.core.tenancy import Role
from src.app.identity.models import Organisation, User
from src.app.identity.passwords import hash_password
from src.app.identity.service import create_user, find_user_by_email, get_or_create_organisation

DEMO_ORGANISATION = "FireMode Demo"
DEMO_USERS = (
    (Role.admin, "admin@demo.firemode.example"),
    (Role.technician, "technician@demo.firemode.example"),
    (Role.viewer, "viewer@demo.firemode.example"),
)


class DemoRefused(Exception):
    """The demo users cannot be created or reset (the message says why)."""


@dataclass(frozen=True, slots=True)
class DemoCredentials:
    role: str
    email: str
    password: str
    is_active: bool = True


def _new_password() -> str:
    return secrets.token_urlsafe(15)  # 20 characters, 120 bits


async def seed(db: AsyncSession, *, if_empty: bool) -> list[DemoCredentials] | None:
    """Create the demo organisation and its users, and commit. None (nothing done) when
    ``if_empty`` and any user exists; DemoRefused when the demo exists already."""
    if if_empty:
        count = (await db.execute(select(func.count()).select_from(User))).scalar()
        if count:
            return None
    taken = await db.execute(
        select(func.count()).where(User.email.in_([email for _, email in DEMO_USERS]))
    )
    existing = await db.execute(
        select(Organisation.id).where(Organisation.name == DEMO_ORGANISATION)
    )
    if taken.scalar() or existing.first() is not None:
        raise DemoRefused("the demo organisation or its users exist already")
    organisation = await get_or_create_organisation(db, DEMO_ORGANISATION)
    credentials: list[DemoCredentials] = []
    for role, email in DEMO_USERS:
        password = _new_password()
        await create_user(
            db,
            organisation_id=organisation.id,
            email=email,
            password_hash=await hash_password(password),
            role=role,
        )
        credentials.append(DemoCredentials(role.value, email, password))
    await db.commit()
    return credentials


async def reset(db: AsyncSession) -> list[DemoCredentials]:
    """Give every demo user a new password (creating the organisation and any missing
    user), and commit. Roles and active flags stay as they are; tokens already issued
    stay valid until they expire or are revoked."""
    organisation = await get_or_create_organisation(db, DEMO_ORGANISATION)
    credentials: list[DemoCredentials] = []
    for role, email in DEMO_USERS:
        password = _new_password()
        password_hash = await hash_password(password)
        user = await find_user_by_email(db, email)
        if user is None:
            user = await create_user(
                db,
                organisation_id=organisation.id,
                email=email,
                password_hash=password_hash,
                role=role,
            )
        elif user.organisation_id != organisation.id:
            raise DemoRefused(f"{email} belongs to a user outside the demo organisation")
        else:
            user.password_hash = password_hash
            user.updated_at = utc_now()
        credentials.append(DemoCredentials(user.role, email, password, user.is_active))
    await db.commit()
    return credentials
