"""Identity operations on the database, shared by the HTTP routes and the CLI.

Nothing here commits unless it says so: the caller owns the transaction, so a request's
changes land together or not at all.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.core import audit
from src.app.core.settings import Settings
from src.app.core.tenancy import Role
from src.app.identity.models import Organisation, RefreshToken, RevokedToken, User
from src.app.identity.tokens import (
    IssuedAccessToken,
    hash_refresh_token,
    issue_access_token,
    new_refresh_token,
)


class EmailTaken(Exception):
    """Another user already has this email (emails are unique across organisations)."""


@dataclass(frozen=True, slots=True)
class IssuedSession:
    access: IssuedAccessToken
    refresh_token: str
    row: RefreshToken


@dataclass(frozen=True, slots=True)
class RevokedAccess:
    """An access token that entered the revocation list (to write through to Redis)."""

    jti: str
    expires_at: datetime


async def create_user(
    db: AsyncSession,
    *,
    organisation_id: uuid.UUID,
    email: str,
    password_hash: str,
    role: Role,
    actor: audit.Actor = audit.SYSTEM,
) -> User:
    """Adds and flushes a user (``email`` already normalised; the password hashed with
    ``hash_password`` beforehand, outside any write transaction), and its audit entry
    (``actor`` created it: a CLI command or the demo seed when not said). Raises
    EmailTaken."""
    if await find_user_by_email(db, email) is not None:
        raise EmailTaken(email)
    user = User(
        id=uuid.uuid4(),
        organisation_id=organisation_id,
        email=email,
        password_hash=password_hash,
        role=role.value,
        is_active=True,
    )
    db.add(user)
    try:
        await db.flush()
    except IntegrityError as exc:  # a concurrent create of the same email won
        raise EmailTaken(email) from exc
    await audit.record(
        db,
        organisation_id=organisation_id,
        actor=actor,
        action="user.created",
        subject_type="user",
        subject_id=user.id,
        payload={"email": email, "role": role.value},
    )
    return user


async def find_user_by_email(db: AsyncSession, email: str) -> User | None:
    found = await db.execute(select(User).where(User.email == email))
    return found.scalar_one_or_none()


async def get_or_create_organisation(db: AsyncSession, name: str) -> Organisation:
    found = await db.execute(select(Organisation).where(Organisation.name == name))
    organisation = found.scalar_one_or_none()
    if organisation is None:
        organisation = Organisation(id=uuid.uuid4(), name=name)
        db.add(organisation)
        await db.flush()
    return organisation


def start_session(
    db: AsyncSession,
    settings: Settings,
    user: User,
    *,
    now: datetime,
    family_id: uuid.UUID | None = None,
    parent_id: uuid.UUID | None = None,
) -> IssuedSession:
    """A new access token and its refresh token (a new family unless one is given)."""
    access = issue_access_token(
        settings, user_id=user.id, organisation_id=user.organisation_id, role=user.role, now=now
    )
    refresh = new_refresh_token()
    row = RefreshToken(
        id=uuid.uuid4(),
        user_id=user.id,
        organisation_id=user.organisation_id,
        family_id=family_id or uuid.uuid4(),
        parent_id=parent_id,
        token_hash=hash_refresh_token(refresh),
        # Sliding: each rotation lives the full lifetime; an idle session ends after it.
        expires_at=now + timedelta(seconds=settings.refresh_token_ttl_seconds),
        access_jti=access.claims.jti,
        access_expires_at=access.claims.expires_at,
        created_at=now,
        updated_at=now,
    )
    db.add(row)
    return IssuedSession(access, refresh, row)


async def find_refresh_token(
    db: AsyncSession, token: str, *, for_update: bool = False
) -> RefreshToken | None:
    statement = select(RefreshToken).where(RefreshToken.token_hash == hash_refresh_token(token))
    if for_update:
        statement = statement.with_for_update()
    return (await db.execute(statement)).scalar_one_or_none()


async def claim_refresh_token(db: AsyncSession, row: RefreshToken, now: datetime) -> bool:
    """Mark the token used, atomically: False when someone else used or revoked it first."""
    result = await db.execute(
        update(RefreshToken)
        .where(
            RefreshToken.id == row.id,
            RefreshToken.used_at.is_(None),
            RefreshToken.revoked_at.is_(None),
        )
        .values(used_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


def within_reuse_grace(used_at: datetime, *, now: datetime, grace_seconds: int) -> bool:
    """Whether a used refresh token presented again at ``now`` is still a client retry."""
    return grace_seconds > 0 and now - used_at < timedelta(seconds=grace_seconds)


async def unused_successors(db: AsyncSession, row: RefreshToken) -> list[RefreshToken] | None:
    """The live (unrevoked) tokens rotated from ``row``, locked on PostgreSQL; None when
    one of its successors was already used, or none is live: then it is not a retry."""
    children = (
        (
            await db.execute(
                select(RefreshToken)
                .where(RefreshToken.parent_id == row.id)
                .order_by(RefreshToken.id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        )
        .scalars()
        .all()
    )
    live = [child for child in children if child.revoked_at is None]
    if not live or any(child.used_at is not None for child in children):
        return None
    return live


async def revoke_successors(
    db: AsyncSession,
    successors: list[RefreshToken],
    *,
    now: datetime,
    user: tuple[uuid.UUID, uuid.UUID],
    reason: str,
) -> list[RevokedAccess] | None:
    """Revoke the successors a retry replaces, and list their access tokens. None when
    one was used or revoked meanwhile (then the caller treats the retry as reuse)."""
    ids = [successor.id for successor in successors]
    result = await db.execute(
        update(RefreshToken)
        .where(
            RefreshToken.id.in_(ids),
            RefreshToken.used_at.is_(None),
            RefreshToken.revoked_at.is_(None),
        )
        .values(revoked_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if int(getattr(result, "rowcount", 0) or 0) != len(ids):
        return None
    entries = [
        RevokedAccess(successor.access_jti, successor.access_expires_at)
        for successor in successors
        if successor.access_jti
        and successor.access_expires_at is not None
        and successor.access_expires_at > now
    ]
    await add_to_revocation_list(db, entries, user=user, revoked_by=None, reason=reason, now=now)
    return entries


async def family_has_live_token(db: AsyncSession, family_id: uuid.UUID, now: datetime) -> bool:
    """Whether the family still has an unused, unrevoked, unexpired refresh token."""
    found = await db.execute(
        select(RefreshToken.id)
        .where(
            RefreshToken.family_id == family_id,
            RefreshToken.used_at.is_(None),
            RefreshToken.revoked_at.is_(None),
            RefreshToken.expires_at > now,
        )
        .limit(1)
    )
    return found.first() is not None


async def revoke_families(
    db: AsyncSession,
    family_ids: set[uuid.UUID],
    *,
    now: datetime,
    user: tuple[uuid.UUID, uuid.UUID],
    revoked_by: uuid.UUID | None,
    reason: str,
) -> list[RevokedAccess]:
    """Revoke every refresh token of the families, and put every still-live access token
    issued with them in the revocation list. ``user`` is (organisation_id, user_id)."""
    if not family_ids:
        return []
    await db.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id.in_(family_ids), RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    live = (
        await db.execute(
            select(RefreshToken.access_jti, RefreshToken.access_expires_at).where(
                RefreshToken.family_id.in_(family_ids),
                RefreshToken.access_jti.is_not(None),
                RefreshToken.access_expires_at > now,
            )
        )
    ).all()
    entries = [RevokedAccess(jti, expires_at) for jti, expires_at in live if jti and expires_at]
    await add_to_revocation_list(
        db, entries, user=user, revoked_by=revoked_by, reason=reason, now=now
    )
    return entries


async def add_to_revocation_list(
    db: AsyncSession,
    entries: list[RevokedAccess],
    *,
    user: tuple[uuid.UUID, uuid.UUID],
    revoked_by: uuid.UUID | None,
    reason: str,
    now: datetime,
) -> None:
    """Insert RTL rows; a jti already listed keeps its first row (ON CONFLICT DO NOTHING)."""
    if not entries:
        return
    organisation_id, user_id = user
    rows = [
        {
            "id": uuid.uuid4(),
            "organisation_id": organisation_id,
            "kind": "token",
            "jti": entry.jti,
            "user_id": user_id,
            "expires_at": entry.expires_at,
            "reason": reason[:200],
            "revoked_by_id": revoked_by,
            "created_at": now,
            "updated_at": now,
        }
        for entry in entries
    ]
    dialect = db.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    await db.execute(
        insert(RevokedToken).values(rows).on_conflict_do_nothing(index_elements=["jti"])
    )


async def revoke_all_tokens(
    db: AsyncSession,
    settings: Settings,
    user: User,
    *,
    now: datetime,
    revoked_by: uuid.UUID | None,
    reason: str,
) -> RevokedToken:
    """Revoke-all: access tokens issued at or before ``now`` are refused from now on, and
    every refresh token of the user is revoked. Records it in the revocation list."""
    previous = user.tokens_valid_after
    user.tokens_valid_after = now if previous is None or previous < now else previous
    user.updated_at = now
    await db.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user.id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    # The record lasts as long as it can refuse anything: the longest an access token
    # issued before ``now`` can live.
    lifetime = settings.access_token_ttl_seconds + settings.jwt_leeway_seconds
    record = RevokedToken(
        id=uuid.uuid4(),
        organisation_id=user.organisation_id,
        kind="all_tokens",
        jti=None,
        user_id=user.id,
        expires_at=now + timedelta(seconds=lifetime),
        reason=reason[:200],
        revoked_by_id=revoked_by,
        created_at=now,
        updated_at=now,
    )
    db.add(record)
    await db.flush()
    return record
