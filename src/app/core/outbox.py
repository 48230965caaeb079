"""The transactional outbox: events written in the same transaction as the change.

A domain calls ``emit`` while it writes; the event commits (or rolls back) with the change,
so an event exists exactly when its change does. A worker (``firemode worker``) later hands
each event to the webhook subscriptions that want it. The event's ``id`` is its identity
for receivers (delivery is at least once: receivers de-duplicate on it).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from src.app.core.clock import utc_now
from src.app.core.database import Base, JSONType, UTCDateTime


class OutboxEvent(Base):
    __tablename__ = "outbox_events"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    # Set once the worker has created this event's deliveries.
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


# The worker's scan: undispatched events, oldest first.
Index(
    "ix_outbox_events_dispatched_at_created_at", OutboxEvent.dispatched_at, OutboxEvent.created_at
)


EVENT_TYPES: set[str] = set()
"""Every event type a domain may emit; webhook subscriptions choose among them."""


def register_event_types(*event_types: str) -> None:
    """Declares event types (called by each emitting domain when it is imported)."""
    EVENT_TYPES.update(event_types)


def emit(
    db: AsyncSession,
    *,
    organisation_id: uuid.UUID,
    event_type: str,
    payload: dict[str, Any],
    at: datetime | None = None,
) -> OutboxEvent:
    """Adds an event to the caller's transaction (flushed and committed with it).

    ``event_type`` is dotted, ``<domain>.<what happened>`` (e.g. ``defect.raised``);
    ``payload`` must be JSON (use ``model_dump(mode="json")``).
    """
    event = OutboxEvent(
        id=uuid.uuid4(),
        organisation_id=organisation_id,
        event_type=event_type,
        payload=payload,
        created_at=at or utc_now(),
    )
    db.add(event)
    return event
