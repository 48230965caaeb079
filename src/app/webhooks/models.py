"""Webhook subscriptions and deliveries (one delivery per subscription and event)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from src.app.core.database import Base, IdentifiedMixin, JSONType, UTCDateTime


class WebhookSubscription(IdentifiedMixin, Base):
    __tablename__ = "webhook_subscriptions"

    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    url: Mapped[str] = mapped_column(String(2000))
    event_types: Mapped[list[str]] = mapped_column(JSONType)
    description: Mapped[str] = mapped_column(String(200), default="")
    # The HMAC key. Shown once when created; the worker needs it in clear to sign.
    secret: Mapped[str] = mapped_column(String(128))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )


class WebhookDelivery(IdentifiedMixin, Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("subscription_id", "event_id"),)

    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    subscription_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_subscriptions.id", ondelete="CASCADE")
    )
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("outbox_events.id"))
    event_type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # delivered, dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # A worker holds the delivery until then while it sends; a crash lets it expire.
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    last_status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


Index(
    "ix_webhook_subscriptions_organisation_id_created_at_id",
    WebhookSubscription.organisation_id,
    WebhookSubscription.created_at.desc(),
    WebhookSubscription.id.desc(),
)
Index(
    "ix_webhook_deliveries_org_subscription_created_at_id",
    WebhookDelivery.organisation_id,
    WebhookDelivery.subscription_id,
    WebhookDelivery.created_at.desc(),
    WebhookDelivery.id.desc(),
)
# The worker's claim: pending deliveries that are due.
Index(
    "ix_webhook_deliveries_status_next_attempt_at",
    WebhookDelivery.status,
    WebhookDelivery.next_attempt_at,
)
Index("ix_webhook_deliveries_event_id", WebhookDelivery.event_id)
