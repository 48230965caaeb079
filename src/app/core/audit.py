"""The one audit writer every domain uses.

A change that matters writes one entry, in the same transaction as the change, so that
a change without its entry cannot exist (a rolled-back change leaves none). Writing is
one ``INSERT`` with no lock on any shared row: the entry gets its place in the
organisation's hash chain afterwards, from the sealer (``src/app/audit/sealer.py``).

Two ways to write:

- ``await record(db, organisation_id=..., actor=..., action=..., subject_type=...,
  subject_id=..., payload={...})`` on the request's session or connection;
- ``entry_values(...)`` and ``entry_insert(values)`` (or the prebuilt ``ENTRY_INSERT``
  executed with the values) for a write path that folds the insert into its own
  statements, e.g. as a CTE of a single-statement write.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Insert, Table, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from src.app.core.audit_chain import SYSTEM_ACTOR, USER_ACTOR, normalised_payload
from src.app.core.audit_model import AuditEntry
from src.app.core.clock import utc_now
from src.app.core.request_context import current_transaction_id
from src.app.core.tenancy import Principal

AUDIT_TABLE = cast(Table, AuditEntry.__table__)
ENTRY_INSERT = insert(AUDIT_TABLE)
"""Prebuilt ``INSERT INTO audit_entries``; execute it with ``entry_values(...)``."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a change: a user, or the system itself (a CLI command, a worker)."""

    type: str
    id: uuid.UUID | None = None

    @classmethod
    def user(cls, user_id: uuid.UUID) -> Actor:
        return cls(USER_ACTOR, user_id)

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        return cls(USER_ACTOR, principal.user_id)


SYSTEM = Actor(SYSTEM_ACTOR, None)


def entry_values(
    *,
    organisation_id: uuid.UUID,
    actor: Actor,
    action: str,
    subject_type: str,
    subject_id: uuid.UUID | str,
    payload: Mapping[str, Any] | None = None,
    now: datetime | None = None,
    transaction_id: str | None = None,
) -> dict[str, Any]:
    """The column values of one entry (``seq`` and, on PostgreSQL, ``txid`` are assigned
    by the database). Raises ``ValueError`` if the payload carries a secret's key."""
    return {
        "id": uuid.uuid4(),
        "organisation_id": organisation_id,
        "actor_type": actor.type,
        "actor_id": actor.id,
        "action": action,
        "subject_type": subject_type,
        "subject_id": str(subject_id),
        "payload": normalised_payload(payload or {}),
        "transaction_id": transaction_id or current_transaction_id(),
        "created_at": now or utc_now(),
    }


def entry_insert(values: Mapping[str, Any]) -> Insert:
    """``INSERT INTO audit_entries`` of one entry, as a Core statement to compose."""
    return insert(AUDIT_TABLE).values(dict(values))


async def record(
    db: AsyncSession | AsyncConnection,
    *,
    organisation_id: uuid.UUID,
    actor: Actor,
    action: str,
    subject_type: str,
    subject_id: uuid.UUID | str,
    payload: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> None:
    """Write one entry in ``db``'s current transaction. Never commits."""
    values = entry_values(
        organisation_id=organisation_id,
        actor=actor,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        payload=payload,
        now=now,
    )
    conn = await db.connection() if isinstance(db, AsyncSession) else db
    await conn.execute(ENTRY_INSERT, values)


async def record_by(
    db: AsyncSession | AsyncConnection,
    principal: Principal,
    action: str,
    subject_type: str,
    subject_id: uuid.UUID | str,
    payload: Mapping[str, Any] | None = None,
    *,
    now: datetime | None = None,
) -> None:
    """``record`` of a change the authenticated caller made in their organisation."""
    await record(
        db,
        organisation_id=principal.organisation_id,
        actor=Actor.of(principal),
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        payload=payload,
        now=now,
    )
