"""Webhook delivery against a real local HTTP receiver: signed, retried with backoff on an
injected clock, dead-lettered, filtered by type and organisation, never sent twice by two
workers, and never lost when a real worker process is killed mid-delivery."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy import update

from src.app.core.database import Database
from src.app.core.outbox import OutboxEvent
from src.app.defects.models import Defect
from src.app.webhooks.signing import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify,
)
from src.app.worker import Worker
from tests.buildings.helpers import MakeTenant, new_asset, new_building, walk
from tests.conftest import Tenant
from tests.defects.processes import process_env, worker
from tests.webhooks.receiver import Receiver, running_receiver

BASE_SECONDS = 10.0


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_worker(
    app: FastAPI, clock: Clock, database: Database | None = None, **settings: Any
) -> Worker:
    config = app.state.settings.model_copy(
        update={
            "webhook_backoff_base_seconds": BASE_SECONDS,
            "webhook_backoff_max_seconds": 3600.0,
            "webhook_timeout_seconds": 5.0,
            **settings,
        }
    )
    return Worker(database or app.state.database, config, clock=clock, rng=random.Random(9))


@pytest.fixture
async def worker_in_process(app: FastAPI, clock: Clock) -> AsyncIterator[Worker]:
    running = make_worker(app, clock)
    yield running
    await running.aclose()


async def subscribe(
    client: httpx.AsyncClient, t: Tenant, url: str, *event_types: str
) -> dict[str, Any]:
    response = await client.post(
        "/v1/webhooks",
        json={"url": url, "event_types": list(event_types or ["defect.raised"])},
        headers=t.admin.headers,
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def raise_defect(client: httpx.AsyncClient, t: Tenant, **fields: Any) -> dict[str, Any]:
    building = await new_building(client, t.admin)
    asset = await new_asset(client, t.technician, building["id"])
    body = {"asset_id": asset["id"], "severity": "non_critical", "remark": "Seal missing", **fields}
    response = await client.post("/v1/defects", json=body, headers=t.technician.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def deliveries(client: httpx.AsyncClient, t: Tenant, sub: str) -> list[dict[str, Any]]:
    return await walk(client, f"/v1/webhooks/{sub}/deliveries", t.admin, limit=50)


async def test_delivered_once_after_two_failures_with_a_valid_signature(
    client: httpx.AsyncClient,
    make_tenant: MakeTenant,
    receiver: Receiver,
    clock: Clock,
    worker_in_process: Worker,
) -> None:
    t = await make_tenant()
    # Events earlier tests left undispatched would fill this pass's batch (50) first.
    async with worker_in_process.database.sessionmaker() as db:
        await db.execute(
            update(OutboxEvent)
            .where(OutboxEvent.dispatched_at.is_(None))
            .values(dispatched_at=clock.now)
        )
        await db.commit()
    sub = await subscribe(client, t, receiver.url)
    receiver.plan = [500, 503]
    defect = await raise_defect(client, t)

    await worker_in_process.run_once()
    assert [r.answered for r in receiver.wait_for(1)] == [500]
    [pending] = await deliveries(client, t, sub["id"])
    assert (pending["status"], pending["attempts"], pending["last_status_code"]) == (
        "pending",
        1,
        500,
    )
    due = datetime.fromisoformat(pending["next_attempt_at"])
    # Equal jitter: the first retry waits between half and all of the base delay.
    assert (
        clock.now + timedelta(seconds=BASE_SECONDS / 2)
        <= due
        <= clock.now + timedelta(seconds=BASE_SECONDS)
    )

    await worker_in_process.run_once()  # not due yet: nothing is sent
    assert len(receiver.received) == 1
    clock.advance(BASE_SECONDS)
    await worker_in_process.run_once()
    clock.advance(2 * BASE_SECONDS)
    await worker_in_process.run_once()
    received = receiver.wait_for(3)
    assert [r.answered for r in received] == [500, 503, 200]
    clock.advance(3600)
    await worker_in_process.run_once()
    assert len(receiver.received) == 3

    event_ids = {r.headers[EVENT_ID_HEADER.lower()] for r in received}
    assert len(event_ids) == 1 and len({r.body for r in received}) == 1
    for r in received:
        assert verify(
            sub["secret"],
            r.headers[TIMESTAMP_HEADER.lower()],
            r.body,
            r.headers[SIGNATURE_HEADER.lower()],
        )
        assert not verify(
            "whsec_wrong",
            r.headers[TIMESTAMP_HEADER.lower()],
            r.body,
            r.headers[SIGNATURE_HEADER.lower()],
        )
    event = json.loads(received[-1].body)
    assert event["id"] == event_ids.pop() and event["type"] == "defect.raised"
    assert event["organisation_id"] == str(t.organisation_id)
    assert event["data"]["defect"]["id"] == defect["id"]
    [done] = await deliveries(client, t, sub["id"])
    assert (done["status"], done["attempts"], done["last_status_code"]) == ("delivered", 3, 200)
    assert done["event_id"] == event["id"] and done["delivered_at"] is not None


async def test_dead_letter_then_manual_retry(
    client: httpx.AsyncClient,
    make_tenant: MakeTenant,
    receiver: Receiver,
    clock: Clock,
    app: FastAPI,
) -> None:
    t = await make_tenant()
    sub = await subscribe(client, t, receiver.url)
    receiver.plan = [500, 500, 500]
    await raise_defect(client, t)
    running = make_worker(app, clock, webhook_max_attempts=3)
    try:
        for _ in range(4):
            await running.run_once()
            clock.advance(3600)
        assert [r.answered for r in receiver.wait_for(3)] == [500, 500, 500]
        assert len(receiver.received) == 3
        [dead] = await deliveries(client, t, sub["id"])
        assert (dead["status"], dead["attempts"]) == ("dead", 3)
        listed = await walk(
            client,
            f"/v1/webhooks/{sub['id']}/deliveries",
            t.admin,
            limit=5,
            params=[("status", "dead")],
        )
        assert [d["id"] for d in listed] == [dead["id"]]
        url = f"/v1/webhooks/{sub['id']}/deliveries/{dead['id']}/retry"
        retried = await client.post(url, headers=t.admin.headers)
        assert retried.status_code == 200 and retried.json()["status"] == "pending"
        assert (await client.post(url, headers=t.admin.headers)).status_code == 409
        await running.run_once()
        assert [r.answered for r in receiver.wait_for(4)][-1] == 200
        [delivered] = await deliveries(client, t, sub["id"])
        assert delivered["status"] == "delivered"
    finally:
        await running.aclose()


async def test_event_types_organisations_and_inactive_subscriptions(
    client: httpx.AsyncClient,
    make_tenant: MakeTenant,
    receiver: Receiver,
    worker_in_process: Worker,
) -> None:
    t, other = await make_tenant(), await make_tenant()
    changes = await subscribe(client, t, receiver.url, "defect.status_changed")
    await subscribe(client, other, receiver.url, "*")
    paused = await subscribe(client, t, receiver.url, "*")
    await client.patch(
        f"/v1/webhooks/{paused['id']}", json={"active": False}, headers=t.admin.headers
    )
    defect = await raise_defect(client, t)
    await worker_in_process.run_once()
    assert receiver.received == []
    moved = await client.patch(
        f"/v1/defects/{defect['id']}",
        json={"status": "acknowledged", "note": "On it"},
        headers=t.technician.headers,
    )
    assert moved.status_code == 200
    await worker_in_process.run_once()
    [only] = receiver.wait_for(1)
    event = json.loads(only.body)
    assert event["type"] == "defect.status_changed"
    assert (event["data"]["from_status"], event["data"]["to_status"], event["data"]["note"]) == (
        "open",
        "acknowledged",
        "On it",
    )
    assert verify(
        changes["secret"],
        only.headers["firemode-timestamp"],
        only.body,
        only.headers["firemode-signature"],
    )


async def test_overdue_defects_raise_one_event_each(
    client: httpx.AsyncClient,
    make_tenant: MakeTenant,
    receiver: Receiver,
    worker_in_process: Worker,
    app: FastAPI,
) -> None:
    t = await make_tenant()
    await subscribe(client, t, receiver.url, "defect.overdue")
    defect = await raise_defect(client, t, severity="critical")
    async with app.state.database.sessionmaker() as db:
        await db.execute(
            update(Defect)
            .where(Defect.id == uuid.UUID(defect["id"]))
            .values(response_due_at=datetime.now(UTC) - timedelta(minutes=1))
        )
        await db.commit()
    report = await worker_in_process.run_once()
    assert report.jobs["defects.overdue"] >= 1
    assert (REGISTRY.get_sample_value("firemode_defects_overdue") or 0) >= 1
    [overdue] = receiver.wait_for(1)
    assert json.loads(overdue.body)["data"]["defect"]["id"] == defect["id"]
    assert json.loads(overdue.body)["data"]["defect"]["overdue"] is True
    await worker_in_process.run_once()
    assert len(receiver.received) == 1


@pytest.mark.postgres
async def test_two_workers_never_send_the_same_delivery(
    client: httpx.AsyncClient,
    make_tenant: MakeTenant,
    receiver: Receiver,
    clock: Clock,
    app: FastAPI,
    database_url: str,
) -> None:
    t = await make_tenant()
    await subscribe(client, t, receiver.url, "defect.raised")
    raised = [await raise_defect(client, t) for _ in range(12)]
    databases = [Database(database_url, pool_size=2), Database(database_url, pool_size=2)]
    workers = [make_worker(app, clock, db, worker_batch_size=3) for db in databases]
    try:
        for _ in range(6):
            await asyncio.gather(*(w.run_once() for w in workers))
        received = receiver.wait_for(len(raised))
        ids = [json.loads(r.body)["data"]["defect"]["id"] for r in received]
        assert sorted(ids) == sorted(d["id"] for d in raised)  # each exactly once
    finally:
        for w, db in zip(workers, databases, strict=True):
            await w.aclose()
            await db.dispose()


async def test_a_killed_worker_process_loses_nothing(
    client: httpx.AsyncClient,
    make_tenant: MakeTenant,
    receiver: Receiver,
    database_url: str,
    tmp_path: Any,
) -> None:
    t = await make_tenant()
    sub = await subscribe(client, t, receiver.url, "defect.raised")
    env = process_env(
        database_url,
        FIREMODE_WEBHOOK_TIMEOUT_SECONDS="2",
        FIREMODE_WEBHOOK_LEASE_SECONDS="3",
        FIREMODE_WORKER_POLL_SECONDS="0.2",
    )
    receiver.hold_next = True  # the first attempt never gets an answer
    defect = await raise_defect(client, t)
    first = worker(env, tmp_path / "worker.log")
    try:
        held = await asyncio.to_thread(receiver.wait_for, 1, 60.0)
    finally:
        first.kill()  # SIGKILL while the delivery is in flight
    assert held[0].answered is None
    receiver.release()
    second = worker(env, tmp_path / "worker.log")
    try:
        received = await asyncio.to_thread(receiver.wait_for, 2, 60.0)
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            [delivery] = await deliveries(client, t, sub["id"])
            if delivery["status"] == "delivered" or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.1)
    finally:
        second.stop()
    assert delivery["status"] == "delivered" and delivery["attempts"] == 2
    assert [r.answered for r in received[:2]] == [None, 200]
    assert received[0].body == received[1].body
    event = json.loads(received[1].body)
    assert event["data"]["defect"]["id"] == defect["id"]
    assert verify(
        sub["secret"],
        received[1].headers["firemode-timestamp"],
        received[1].body,
        received[1].headers["firemode-signature"],
    )
