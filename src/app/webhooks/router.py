"""Webhook subscriptions (admin): register a URL and the event types it receives, and see
every delivery. Events are signed with the subscription's secret, shown once."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.core import audit
from src.app.core.clock import utc_now
from src.app.core.database import get_db
from src.app.core.errors import ApiError, error_responses
from src.app.core.idempotency import (
    IDEMPOTENCY_ERROR_STATUSES,
    IdempotentRequest,
    idempotency_optional,
)
from src.app.core.pagination import Page, PageParams, page_params, paginate
from src.app.core.responses import json_response
from src.app.core.tenancy import Principal, get_owned, scoped
from src.app.core.transactions import begin_write
from src.app.identity.dependencies import require_admin
from src.app.webhooks.models import WebhookDelivery, WebhookSubscription
from src.app.webhooks.schemas import (
    DeliveryOut,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionOut,
    SubscriptionUpdate,
)
from src.app.webhooks.service import DEAD, DELIVERED, PENDING
from src.app.webhooks.signing import new_secret

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
SUBSCRIPTIONS_ENDPOINT = "GET /v1/webhooks"
DELIVERIES_ENDPOINT = "GET /v1/webhooks/{id}/deliveries"
WHAT = "Webhook subscription"


@router.post(
    "",
    status_code=201,
    response_model=SubscriptionCreated,
    summary="Register a webhook subscription (admin); its secret is shown once",
    description=(
        "Events of the chosen types, from now on, are POSTed to `url` as JSON, signed with "
        "HMAC-SHA256 (see docs/api/webhooks.md). Honours `Idempotency-Key` (a replay shows "
        "the same secret)."
    ),
    responses=error_responses(*IDEMPOTENCY_ERROR_STATUSES),
)
async def create_subscription(
    body: SubscriptionCreate,
    principal: Principal = Depends(require_admin),
    db: AsyncSession = Depends(get_db),
    idempotency: IdempotentRequest = Depends(idempotency_optional),
) -> Response:
    async def work() -> Response:
        subscription = WebhookSubscription(
            organisation_id=principal.organisation_id,
            url=str(body.url),
            event_types=body.event_types,
            description=body.description,
            secret=new_secret(),
            active=True,
            created_by=principal.user_id,
        )
        db.add(subscription)
        await db.flush()
        await audit.record_by(
            db,
            principal,
            "webhook_subscription.created",
            "webhook_subscription",
            subscription.id,
            {
                "url": subscription.url,
                "event_types": subscription.event_types,
                "description": subscription.description,
            },
        )
        created = SubscriptionCreated(
            **SubscriptionOut.of(subscription).model_dump(), secret=subscription.secret
        )
        return json_response(
            created, status_code=201, headers={"Location": f"/v1/webhooks/{subscription.id}"}
        )

    return await idempotency.run(principal, work)


@router.get(
    "",
    response_model=Page[SubscriptionOut],
    summary="List webhook subscriptions (admin), newest first",
    responses=error_responses(400),
)
async def list_subscriptions(
    params: PageParams = Depends(page_params),
    principal: Principal = Depends(require_admin),
    db: AsyncSession = Depends(get_db),
) -> Page[SubscriptionOut]:
    rows, next_cursor = await paginate(
        db,
        scoped(select(WebhookSubscription), WebhookSubscription, principal),
        WebhookSubscription,
        params,
        endpoint=SUBSCRIPTIONS_ENDPOINT,
        filters={},
        organisation_id=principal.organisation_id,
    )
    return Page[SubscriptionOut](
        data=[SubscriptionOut.of(s) for s in rows], next_cursor=next_cursor
    )


@router.get("/{subscription_id}", response_model=SubscriptionOut, summary="Get a subscription")
async def get_subscription(
    subscription_id: uuid.UUID,
    principal: Principal = Depends(require_admin),
    db: AsyncSession = Depends(get_db),
) -> SubscriptionOut:
    return SubscriptionOut.of(
        await get_owned(db, WebhookSubscription, subscription_id, principal, what=WHAT)
    )


@router.patch(
    "/{subscription_id}",
    response_model=SubscriptionOut,
    summary="Change a subscription's URL, event types, description or active flag (admin)",
    description="Deliveries already created keep going to the URL current when they are sent.",
)
async def update_subscription(
    subscription_id: uuid.UUID,
    body: SubscriptionUpdate,
    principal: Principal = Depends(require_admin),
    db: AsyncSession = Depends(get_db),
) -> SubscriptionOut:
    await begin_write(db)
    subscription = await get_owned(
        db, WebhookSubscription, subscription_id, principal, what=WHAT, for_update=True
    )
    changes = body.model_dump(exclude_unset=True)
    if "url" in changes:
        changes["url"] = str(body.url)
    changed: dict[str, object] = {}
    for name, value in changes.items():
        if value is None:
            raise ApiError(422, f"{name} may not be null")
        if getattr(subscription, name) != value:
            changed[name] = value
        setattr(subscription, name, value)
    if changed:
        await audit.record_by(
            db,
            principal,
            "webhook_subscription.updated",
            "webhook_subscription",
            subscription.id,
            {"changes": changed},
        )
    await db.commit()
    return SubscriptionOut.of(subscription)


@router.delete(
    "/{subscription_id}",
    status_code=204,
    summary="Delete a subscription and its delivery log (admin)",
)
async def delete_subscription(
    subscription_id: uuid.UUID,
    principal: Principal = Depends(require_admin),
    db: AsyncSession = Depends(get_db),
) -> Response:
    await begin_write(db)
    subscription = await get_owned(
        db, WebhookSubscription, subscription_id, principal, what=WHAT, for_update=True
    )
    await db.delete(subscription)
    await audit.record_by(
        db,
        principal,
        "webhook_subscription.deleted",
        "webhook_subscription",
        subscription.id,
        {"url": subscription.url},
    )
    await db.commit()
    return Response(status_code=204)


@router.get(
    "/{subscription_id}/deliveries",
    response_model=Page[DeliveryOut],
    summary="List a subscription's deliveries (admin), newest first",
    responses=error_responses(400),
)
async def list_deliveries(
    subscription_id: uuid.UUID,
    status: str | None = Query(
        None, pattern=f"^({PENDING}|{DELIVERED}|{DEAD})$", description="pending, delivered, dead."
    ),
    params: PageParams = Depends(page_params),
    principal: Principal = Depends(require_admin),
    db: AsyncSession = Depends(get_db),
) -> Page[DeliveryOut]:
    await get_owned(db, WebhookSubscription, subscription_id, principal, what=WHAT)
    statement = scoped(select(WebhookDelivery), WebhookDelivery, principal).where(
        WebhookDelivery.subscription_id == subscription_id
    )
    if status is not None:
        statement = statement.where(WebhookDelivery.status == status)
    rows, next_cursor = await paginate(
        db,
        statement,
        WebhookDelivery,
        params,
        endpoint=DELIVERIES_ENDPOINT,
        filters={"subscription_id": str(subscription_id), "status": status},
        organisation_id=principal.organisation_id,
    )
    return Page[DeliveryOut](data=[DeliveryOut.of(d) for d in rows], next_cursor=next_cursor)


@router.post(
    "/{subscription_id}/deliveries/{delivery_id}/retry",
    response_model=DeliveryOut,
    summary="Send a dead-lettered delivery again (admin)",
    description=(
        "Puts a `dead` delivery back to `pending` with a fresh attempt budget, due now. "
        "Any other status is 409. Honours `Idempotency-Key`."
    ),
    responses=error_responses(*IDEMPOTENCY_ERROR_STATUSES),
)
async def retry_delivery(
    subscription_id: uuid.UUID,
    delivery_id: uuid.UUID,
    principal: Principal = Depends(require_admin),
    db: AsyncSession = Depends(get_db),
    idempotency: IdempotentRequest = Depends(idempotency_optional),
) -> Response:
    async def work() -> Response:
        delivery = await get_owned(
            db, WebhookDelivery, delivery_id, principal, what="Delivery", for_update=True
        )
        if delivery.subscription_id != subscription_id:
            raise ApiError(404, f"Delivery {delivery_id} does not exist")
        if delivery.status != DEAD:
            raise ApiError(
                409, f"Only a dead delivery can be retried; this one is {delivery.status}"
            )
        now = utc_now()
        delivery.status, delivery.attempts = PENDING, 0
        delivery.next_attempt_at, delivery.leased_until, delivery.updated_at = now, None, now
        await db.flush()
        return json_response(DeliveryOut.of(delivery))

    return await idempotency.run(principal, work)
