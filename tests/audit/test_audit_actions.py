"""Every audited action writes exactly one entry, in its own transaction."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from src.app.core import audit
from src.app.core.audit_model import AuditEntry
from src.app.core.database import Database
from tests.audit.conftest import entries_of, one_entry, tx_headers


async def _building(client: httpx.AsyncClient, tenant: Any) -> dict[str, Any]:
    response = await client.post(
        "/v1/buildings",
        json={"name": "Tower A", "address": "1 Main St, Sydney NSW", "building_type": "office"},
        headers=tenant.admin.headers,
    )
    assert response.status_code == 201
    body: dict[str, Any] = response.json()
    return body


async def test_building_and_asset_changes_write_one_entry_each(
    client: httpx.AsyncClient, app: FastAPI, make_tenant: Any
) -> None:
    tenant = await make_tenant()
    headers, tx = tx_headers(tenant.admin.headers)
    created = await client.post(
        "/v1/buildings",
        json={
            "name": "Tower B",
            "address": "2 Main St",
            "building_type": "office",
            "metadata": {"password": "x"},
        },
        headers=headers,
    )
    assert created.status_code == 201
    entry = await one_entry(app, tx)
    building_id = created.json()["id"]
    assert (entry.action, entry.subject_type, entry.subject_id) == (
        "building.created",
        "building",
        building_id,
    )
    assert (entry.actor_type, entry.actor_id) == ("user", tenant.admin.id)
    assert entry.organisation_id == tenant.organisation_id
    assert entry.payload == {"name": "Tower B", "address": "2 Main St", "building_type": "office"}

    headers, tx = tx_headers(tenant.admin.headers)
    patched = await client.patch(
        f"/v1/buildings/{building_id}",
        json={"name": "Tower B2", "metadata": {"floors": 3}},
        headers=headers,
    )
    assert patched.status_code == 200
    entry = await one_entry(app, tx)
    assert entry.action == "building.updated"
    assert entry.payload == {"changes": {"name": "Tower B2", "metadata": "changed"}}

    headers, tx = tx_headers(tenant.admin.headers)
    assert (
        await client.patch(
            f"/v1/buildings/{building_id}", json={"name": "Tower B2"}, headers=headers
        )
    ).status_code == 200
    assert await entries_of(app, tx) == []  # nothing changed, nothing recorded

    headers, tx = tx_headers(tenant.technician.headers)
    asset = await client.post(
        f"/v1/buildings/{building_id}/assets",
        json={"asset_type": "fire_extinguisher", "location": "L1 lobby", "barcode": "EXT-1"},
        headers=headers,
    )
    assert asset.status_code == 201, asset.text
    entry = await one_entry(app, tx)
    assert (entry.action, entry.subject_id) == ("asset.created", asset.json()["id"])
    assert entry.payload["barcode"] == "EXT-1"
    assert entry.actor_id == tenant.technician.id

    headers, tx = tx_headers(tenant.technician.headers)
    moved = await client.patch(
        f"/v1/assets/{asset.json()['id']}", json={"location": "L2"}, headers=headers
    )
    assert moved.status_code == 200
    entry = await one_entry(app, tx)
    assert (entry.action, entry.payload) == ("asset.updated", {"changes": {"location": "L2"}})

    headers, tx = tx_headers(tenant.admin.headers)
    assert (await client.delete(f"/v1/buildings/{building_id}", headers=headers)).status_code == 204
    entry = await one_entry(app, tx)
    assert (entry.action, entry.subject_id) == ("building.deleted", building_id)


async def test_session_create_and_status_changes(
    client: httpx.AsyncClient, app: FastAPI, make_tenant: Any
) -> None:
    tenant = await make_tenant()
    building = await _building(client, tenant)
    headers, tx = tx_headers(tenant.technician.headers)
    created = await client.post(
        "/v1/tests/sessions",
        json={"building_id": building["id"], "session_name": "Monthly", "frequency": "monthly"},
        headers=headers,
    )
    assert created.status_code == 201
    session_id = created.json()["id"]
    entry = await one_entry(app, tx)
    assert (entry.action, entry.subject_type, entry.subject_id) == (
        "test_session.created",
        "test_session",
        session_id,
    )
    assert entry.payload["status"] == "draft"

    for status, previous in (("scheduled", "draft"), ("in_progress", "scheduled")):
        headers, tx = tx_headers(tenant.technician.headers)
        moved = await client.patch(
            f"/v1/tests/sessions/{session_id}", json={"status": status}, headers=headers
        )
        assert moved.status_code == 200
        entry = await one_entry(app, tx)
        assert entry.action == "test_session.status_changed"
        assert (entry.payload["from"], entry.payload["to"]) == (previous, status)

    # Refused (409) and no-op PATCHes write nothing.
    headers, tx = tx_headers(tenant.technician.headers)
    refused = await client.patch(
        f"/v1/tests/sessions/{session_id}", json={"status": "draft"}, headers=headers
    )
    assert refused.status_code == 409
    assert await entries_of(app, tx) == []
    headers, tx = tx_headers(tenant.technician.headers)
    same = await client.patch(
        f"/v1/tests/sessions/{session_id}", json={"status": "in_progress"}, headers=headers
    )
    assert same.status_code == 200
    assert await entries_of(app, tx) == []

    headers, tx = tx_headers(tenant.technician.headers)
    renamed = await client.patch(
        f"/v1/tests/sessions/{session_id}", json={"session_name": "Monthly L1"}, headers=headers
    )
    assert renamed.status_code == 200
    entry = await one_entry(app, tx)
    assert (entry.action, entry.payload) == (
        "test_session.updated",
        {"changes": {"session_name": "Monthly L1"}},
    )


async def test_results_batches(client: httpx.AsyncClient, app: FastAPI, make_tenant: Any) -> None:
    tenant = await make_tenant()
    session_id = str(uuid.uuid4())
    url = f"/v1/tests/sessions/{session_id}/results"
    body = {
        "device_id": "tablet-1",
        "changes": [
            {"op": "set", "path": "/a", "value": 1, "op_id": "op-1"},
            {"op": "set", "path": "/b", "value": 2, "op_id": "op-2"},
        ],
    }
    headers, tx = tx_headers({**tenant.technician.headers, "Idempotency-Key": "k1"})
    first = await client.post(url, json=body, headers=headers)
    assert first.status_code == 200, first.text
    found = await entries_of(app, tx)
    # The unknown session is created (one entry) and the batch accepted (one entry).
    assert [e.action for e in found] == ["test_session.created", "results.accepted"]
    accepted = found[1]
    assert accepted.subject_id == session_id
    assert accepted.payload["op_ids"] == ["op-1", "op-2"]
    assert accepted.payload["version"] == 2

    # A replay (same key) does no work and writes nothing.
    headers, tx = tx_headers({**tenant.technician.headers, "Idempotency-Key": "k1"})
    replay = await client.post(url, json=body, headers=headers)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert await entries_of(app, tx) == []

    # Ops already received: nothing changes, nothing is recorded.
    headers, tx = tx_headers({**tenant.technician.headers, "Idempotency-Key": "k2"})
    duplicate = await client.post(url, json=body, headers=headers)
    assert duplicate.json()["applied"] == 0
    assert await entries_of(app, tx) == []

    headers, tx = tx_headers({**tenant.technician.headers, "Idempotency-Key": "k3"})
    body["changes"].append({"op": "delete", "path": "/a", "op_id": "op-3"})
    third = await client.post(url, json=body, headers=headers)
    assert third.json()["applied"] == 1
    entry = await one_entry(app, tx)
    assert (entry.action, entry.payload["op_ids"], entry.payload["version"]) == (
        "results.accepted",
        ["op-3"],
        3,
    )


async def test_rolled_back_change_leaves_no_entry(app: FastAPI, make_tenant: Any) -> None:
    tenant = await make_tenant()
    database: Database = app.state.database
    marker = str(uuid.uuid4())
    async with database.sessionmaker() as db:
        await audit.record(
            db,
            organisation_id=tenant.organisation_id,
            actor=audit.SYSTEM,
            action="test.rolled_back",
            subject_type="test",
            subject_id=marker,
        )
        await db.rollback()
        count = await db.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.subject_id == marker)
        )
    assert count == 0


def test_payload_refuses_secrets() -> None:
    with pytest.raises(ValueError, match="password"):
        audit.entry_values(
            organisation_id=uuid.uuid4(),
            actor=audit.SYSTEM,
            action="x",
            subject_type="user",
            subject_id="u",
            payload={"nested": [{"password": "hunter2"}]},
        )
