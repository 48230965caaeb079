"""Completing a session raises the defects its evaluation implies, exactly once: retried,
raced in one process, and raced across the workers of a real server (PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from src.app.core.outbox import OutboxEvent
from src.app.defects.models import Defect
from tests.buildings.helpers import MakeTenant, assert_error, walk
from tests.conftest import Tenant
from tests.defects.helpers import Site, answer, evaluation, pointer, site
from tests.defects.processes import Server, process_env

EXT = "AS1851-EXT-6M"


async def failing_round(client: httpx.AsyncClient, t: Tenant) -> Site:
    """Two extinguishers: one with a broken seal and no charge, one fine."""
    s = await site(
        client,
        t.admin,
        t.technician,
        assets={
            "bad": {"asset_type": "fire_extinguisher"},
            "good": {"asset_type": "fire_extinguisher"},
        },
    )
    bad, good = s.assets["bad"], s.assets["good"]
    keys = (
        "location_access",
        "signage",
        "seal_pin",
        "body_condition",
        "charge_state",
        "hose_nozzle",
    )
    answers: dict[str, Any] = {pointer(good, EXT, k): True for k in keys}
    answers[pointer(good, EXT, "charge_state")] = "in_range"
    answers.update({pointer(bad, EXT, k): True for k in keys})
    answers[pointer(bad, EXT, "seal_pin")] = False
    answers[pointer(bad, EXT, "charge_state")] = "empty"
    written = await answer(client, t.technician, s.session_id, answers)
    assert written.status_code == 200, written.text
    return s


async def counts(app: FastAPI, session_id: str) -> tuple[int, int]:
    """(defects of the session, defect.raised events about them)."""
    async with app.state.database.sessionmaker() as db:
        defects = await db.scalar(
            select(func.count())
            .select_from(Defect)
            .where(Defect.session_id == uuid.UUID(session_id))
        )
        events = (
            await db.execute(
                select(OutboxEvent.payload).where(OutboxEvent.event_type == "defect.raised")
            )
        ).scalars()
        raised = sum(1 for p in events if p["defect"]["session_id"] == session_id)
    return int(defects or 0), raised


def complete(session_id: str) -> tuple[str, dict[str, str]]:
    return f"/v1/tests/sessions/{session_id}", {"status": "completed"}


async def test_completion_raises_the_implied_defects_once(
    client: httpx.AsyncClient, make_tenant: MakeTenant, app: FastAPI
) -> None:
    t = await make_tenant()
    s = await failing_round(client, t)
    implied = (await evaluation(client, t.technician, s.session_id))["defects"]
    assert len(implied) == 2
    url, body = complete(s.session_id)
    done = await client.patch(url, json=body, headers=t.technician.headers)
    assert done.status_code == 200 and done.json()["completed_at"] is not None
    listed = await walk(
        client, "/v1/defects", t.viewer, limit=10, params=[("session_id", s.session_id)]
    )
    got = {
        (d["asset_id"], d["rule_code"], d["rule_version"], d["item_key"], d["severity"])
        for d in listed
    }
    assert got == {
        (s.assets["bad"], EXT, "1.0.0", "seal_pin", "non_critical"),
        (s.assets["bad"], EXT, "1.0.0", "charge_state", "critical"),
    }
    assert all(
        d["source"] == "evaluation" and d["raised_by"] == str(t.technician.id) for d in listed
    )
    assert all(d["building_id"] == s.building_id for d in listed)
    # A retry is refused (the session is locked) and raises nothing more.
    assert_error(await client.patch(url, json=body, headers=t.technician.headers), 409)
    assert await counts(app, s.session_id) == (2, 2)


async def test_a_clean_session_raises_nothing(
    client: httpx.AsyncClient, make_tenant: MakeTenant, app: FastAPI
) -> None:
    t = await make_tenant()
    s = await site(
        client, t.admin, t.technician, assets={"ext": {"asset_type": "fire_extinguisher"}}
    )
    url, body = complete(s.session_id)
    assert (await client.patch(url, json=body, headers=t.technician.headers)).status_code == 200
    assert await counts(app, s.session_id) == (0, 0)


async def test_concurrent_completions_raise_once(
    client: httpx.AsyncClient, make_tenant: MakeTenant, app: FastAPI
) -> None:
    t = await make_tenant()
    s = await failing_round(client, t)
    url, body = complete(s.session_id)
    responses = await asyncio.gather(
        *(client.patch(url, json=body, headers=t.technician.headers) for _ in range(6))
    )
    assert sorted(r.status_code for r in responses) == [200] + [409] * 5
    assert await counts(app, s.session_id) == (2, 2)


@pytest.fixture(scope="module")
def two_worker_server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    assert database_url.startswith("postgresql"), "this test needs the PostgreSQL backend"
    tmp = tmp_path_factory.mktemp("completion-server")
    metrics = tmp / "prometheus"
    metrics.mkdir()
    env = process_env(database_url, PROMETHEUS_MULTIPROC_DIR=str(metrics))
    server = Server(env, tmp / "server.log", workers=2)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.mark.postgres
async def test_completion_raced_across_two_worker_processes(
    two_worker_server: Server, make_tenant: MakeTenant, app: FastAPI
) -> None:
    t = await make_tenant()
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=two_worker_server.url, timeout=30, limits=limits) as http:
        rounds = [await failing_round(http, t) for _ in range(3)]
        for s in rounds:
            url, body = complete(s.session_id)
            responses = await asyncio.gather(
                *(http.patch(url, json=body, headers=t.technician.headers) for _ in range(8))
            )
            assert sorted(r.status_code for r in responses) == [200] + [409] * 7
            assert await counts(app, s.session_id) == (2, 2)
