"""Idempotency-Key on the creates of buildings, assets and sessions:
a retry replays the stored response and creates nothing more; another body is 422."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from src.app.buildings.models import Asset, Building
from src.app.sessions.models import TestSession
from tests.buildings.helpers import MakeTenant, assert_error, count_rows, new_building
from tests.conftest import Tenant


async def _target(
    client: httpx.AsyncClient, tenant: Tenant, kind: str
) -> tuple[str, dict[str, Any], dict[str, Any], Any]:
    """URL, a body, another body, and the model whose rows are counted."""
    if kind == "building":
        body = {"name": "Depot", "address": "2 Rail St", "building_type": "warehouse"}
        return "/v1/buildings", body, {**body, "name": "Depot 2"}, Building
    building = await new_building(client, tenant.admin)
    if kind == "asset":
        body = {"asset_type": "fire_hose_reel", "barcode": f"HR-{uuid.uuid4().hex[:6]}"}
        other = {**body, "location": "Elsewhere"}
        return f"/v1/buildings/{building['id']}/assets", body, other, Asset
    body = {"building_id": building["id"], "session_name": "6-monthly"}  # server-chosen id
    return "/v1/tests/sessions", body, {**body, "session_name": "Other"}, TestSession


@pytest.mark.parametrize("kind", ["building", "asset", "session"])
async def test_same_key_same_body_replays_and_creates_once(
    app: FastAPI, client: httpx.AsyncClient, make_tenant: MakeTenant, kind: str
) -> None:
    tenant = await make_tenant()
    url, body, _, model = await _target(client, tenant, kind)
    before = await count_rows(app, model, tenant.organisation_id)
    headers = {**tenant.admin.headers, "Idempotency-Key": f"create-{kind}-1"}
    first = await client.post(url, json=body, headers=headers)
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    again = await client.post(url, json=body, headers=headers)
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert again.headers["location"] == first.headers["location"]
    assert await count_rows(app, model, tenant.organisation_id) == before + 1


@pytest.mark.parametrize("kind", ["building", "asset", "session"])
async def test_same_key_other_body_is_422_and_creates_nothing(
    app: FastAPI, client: httpx.AsyncClient, make_tenant: MakeTenant, kind: str
) -> None:
    tenant = await make_tenant()
    url, body, other, model = await _target(client, tenant, kind)
    headers = {**tenant.admin.headers, "Idempotency-Key": f"create-{kind}-2"}
    assert (await client.post(url, json=body, headers=headers)).status_code == 201
    after_first = await count_rows(app, model, tenant.organisation_id)
    assert_error(await client.post(url, json=other, headers=headers), 422)
    assert await count_rows(app, model, tenant.organisation_id) == after_first


async def test_a_refused_create_stores_nothing_so_the_fixed_retry_succeeds(
    app: FastAPI, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    headers = {**tenant.technician.headers, "Idempotency-Key": "session-after-404"}
    missing_building = {"building_id": str(uuid.uuid4()), "session_name": "Too early"}
    assert_error(
        await client.post("/v1/tests/sessions", json=missing_building, headers=headers), 404
    )
    building = await new_building(client, tenant.admin)
    fixed = {"building_id": building["id"], "session_name": "Too early"}
    response = await client.post("/v1/tests/sessions", json=fixed, headers=headers)
    assert response.status_code == 201
    assert await count_rows(app, TestSession, tenant.organisation_id) == 1


async def test_malformed_key_is_400(
    app: FastAPI, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    body = {"name": "Depot", "address": "2 Rail St", "building_type": "warehouse"}
    headers = {**tenant.admin.headers, "Idempotency-Key": "k" * 256}
    assert_error(await client.post("/v1/buildings", json=body, headers=headers), 400)
    assert await count_rows(app, Building, tenant.organisation_id) == 0
