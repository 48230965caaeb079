"""Request and response bodies of webhook subscriptions and deliveries."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import AnyHttpUrl, Field, field_validator

from src.app.core.outbox import EVENT_TYPES
from src.app.core.schemas import RequestModel, ResourceModel, UTCTimestamp
from src.app.webhooks.models import WebhookDelivery, WebhookSubscription
from src.app.webhooks.service import ALL_EVENTS

EVENT_TYPES_DESCRIPTION = (
    "Event types to receive (e.g. `defect.raised`, `defect.status_changed`, "
    "`defect.overdue`), or `*` for all."
)
Url = Annotated[AnyHttpUrl, Field(description="http(s) URL that receives POSTed events.")]


def _known(event_types: list[str]) -> list[str]:
    unknown = sorted(set(event_types) - EVENT_TYPES - {ALL_EVENTS})
    if unknown:
        raise ValueError(
            f"unknown event type(s) {', '.join(unknown)}; known: {', '.join(sorted(EVENT_TYPES))}"
        )
    return sorted(set(event_types))


class SubscriptionCreate(RequestModel):
    url: Url
    event_types: list[str] = Field(min_length=1, max_length=50, description=EVENT_TYPES_DESCRIPTION)
    description: Annotated[str, Field(max_length=200)] = ""

    _check_types = field_validator("event_types")(_known)


class SubscriptionUpdate(RequestModel):
    url: Url | None = None
    event_types: list[str] | None = Field(
        default=None, min_length=1, max_length=50, description=EVENT_TYPES_DESCRIPTION
    )
    description: Annotated[str, Field(max_length=200)] | None = None
    active: bool | None = Field(default=None, description="false: stop new deliveries.")

    @field_validator("event_types")
    @classmethod
    def _check_types(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            raise ValueError("may not be null")
        return _known(value)


class SubscriptionOut(ResourceModel):
    url: str
    event_types: list[str]
    description: str
    active: bool
    created_by: uuid.UUID | None

    @classmethod
    def of(cls, subscription: WebhookSubscription) -> SubscriptionOut:
        return cls.model_validate(subscription)


class SubscriptionCreated(SubscriptionOut):
    secret: str = Field(
        description="The HMAC-SHA256 signing key. Shown only in this response: store it now."
    )


class DeliveryOut(ResourceModel):
    subscription_id: uuid.UUID
    event_id: uuid.UUID = Field(description="The event's id (receivers de-duplicate on it).")
    event_type: str
    status: str = Field(description="pending, delivered, or dead (gave up).")
    attempts: int
    next_attempt_at: UTCTimestamp
    last_attempt_at: UTCTimestamp | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: UTCTimestamp | None

    @classmethod
    def of(cls, delivery: WebhookDelivery) -> DeliveryOut:
        return cls.model_validate(delivery)
