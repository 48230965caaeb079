"""Delivering outbox events to webhook subscriptions, in three short transactions.

1. ``dispatch_events``: each undispatched outbox event becomes one pending delivery per
   active subscription that wants its type; the event is marked dispatched.
2. ``claim_deliveries``: due pending deliveries are leased to this worker (``leased_until``)
   and their attempt counted. On PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets several
   workers claim side by side without ever taking the same delivery; on SQLite the write
   transaction is serialised anyway.
3. The worker sends each claimed delivery outside any transaction, then ``record_attempt``
   stores the outcome: delivered (2xx), retried later with backoff, or dead after the last
   attempt. A worker that dies mid-send leaves its lease to expire; the delivery is then
   claimed again (at least once, never lost).
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.core.metrics import WEBHOOK_DELIVERIES
from src.app.core.outbox import OutboxEvent
from src.app.core.settings import Settings
from src.app.webhooks.models import WebhookDelivery, WebhookSubscription
from src.app.webhooks.signing import backoff_seconds, event_body

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
ALL_EVENTS = "*"
MAX_ERROR_CHARS = 500


def wants(subscription: WebhookSubscription, event_type: str) -> bool:
    return ALL_EVENTS in subscription.event_types or event_type in subscription.event_types


async def dispatch_events(db: AsyncSession, *, now: datetime, limit: int) -> int:
    """Turns up to ``limit`` undispatched events into deliveries; returns how many events."""
    events = list(
        (
            await db.execute(
                select(OutboxEvent)
                .where(OutboxEvent.dispatched_at.is_(None))
                .order_by(OutboxEvent.created_at, OutboxEvent.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).scalars()
    )
    if not events:
        return 0
    organisations = {e.organisation_id for e in events}
    subscriptions: dict[uuid.UUID, list[WebhookSubscription]] = defaultdict(list)
    for subscription in (
        await db.execute(
            select(WebhookSubscription).where(
                WebhookSubscription.organisation_id.in_(organisations),
                WebhookSubscription.active.is_(True),
            )
        )
    ).scalars():
        subscriptions[subscription.organisation_id].append(subscription)
    for event in events:
        for subscription in subscriptions[event.organisation_id]:
            if wants(subscription, event.event_type):
                db.add(
                    WebhookDelivery(
                        organisation_id=event.organisation_id,
                        subscription_id=subscription.id,
                        event_id=event.id,
                        event_type=event.event_type,
                        status=PENDING,
                        attempts=0,
                        next_attempt_at=now,
                        created_at=now,
                        updated_at=now,
                    )
                )
        event.dispatched_at = now
    await db.flush()
    return len(events)


@dataclass(frozen=True, slots=True)
class Claim:
    """A delivery leased to this worker, with everything needed to send it."""

    delivery_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    attempt: int
    leased_until: datetime
    url: str
    secret: str
    body: bytes


async def claim_deliveries(
    db: AsyncSession, *, now: datetime, lease_seconds: float, limit: int
) -> list[Claim]:
    """Leases up to ``limit`` due deliveries and counts their attempt (caller commits)."""
    rows = (
        await db.execute(
            select(WebhookDelivery)
            .where(
                WebhookDelivery.status == PENDING,
                WebhookDelivery.next_attempt_at <= now,
            )
            .where((WebhookDelivery.leased_until.is_(None)) | (WebhookDelivery.leased_until <= now))
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).scalars()
    deliveries = list(rows)
    if not deliveries:
        return []
    subscriptions = {
        s.id: s
        for s in (
            await db.execute(
                select(WebhookSubscription).where(
                    WebhookSubscription.id.in_({d.subscription_id for d in deliveries})
                )
            )
        ).scalars()
    }
    events = {
        e.id: e
        for e in (
            await db.execute(
                select(OutboxEvent).where(OutboxEvent.id.in_({d.event_id for d in deliveries}))
            )
        ).scalars()
    }
    lease = now + timedelta(seconds=lease_seconds)
    claims = []
    for delivery in deliveries:
        subscription, event = subscriptions[delivery.subscription_id], events[delivery.event_id]
        delivery.attempts += 1
        delivery.leased_until = lease
        delivery.last_attempt_at = now
        delivery.updated_at = now
        claims.append(
            Claim(
                delivery_id=delivery.id,
                event_id=event.id,
                event_type=event.event_type,
                attempt=delivery.attempts,
                leased_until=lease,
                url=subscription.url,
                secret=subscription.secret,
                body=event_body(
                    event_id=str(event.id),
                    event_type=event.event_type,
                    organisation_id=str(event.organisation_id),
                    created_at=event.created_at,
                    data=event.payload,
                ),
            )
        )
    await db.flush()
    return claims


async def record_attempt(
    db: AsyncSession,
    claim: Claim,
    *,
    status_code: int | None,
    error: str | None,
    now: datetime,
    settings: Settings,
    rng: random.Random,
) -> str:
    """Stores the outcome of one attempt; returns delivered, retry or dead. Nothing is
    written if this worker's lease was lost meanwhile (another worker owns it now)."""
    values: dict[str, object] = {
        "leased_until": None,
        "last_status_code": status_code,
        "last_error": (error or "")[:MAX_ERROR_CHARS] or None,
        "updated_at": now,
    }
    if status_code is not None and 200 <= status_code < 300:
        outcome = DELIVERED
        values.update(status=DELIVERED, delivered_at=now, last_error=None)
    elif claim.attempt >= settings.webhook_max_attempts:
        outcome = DEAD
        values.update(status=DEAD)
    else:
        outcome = "retry"
        delay = backoff_seconds(
            claim.attempt,
            base=settings.webhook_backoff_base_seconds,
            cap=settings.webhook_backoff_max_seconds,
            rng=rng,
        )
        values.update(next_attempt_at=now + timedelta(seconds=delay))
    result = await db.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == claim.delivery_id,
            WebhookDelivery.leased_until == claim.leased_until,
        )
        .values(**values)
    )
    if getattr(result, "rowcount", 0) == 0:
        return "lost"
    WEBHOOK_DELIVERIES.labels(outcome).inc()
    return outcome
