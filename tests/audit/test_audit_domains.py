"""Defect transitions, rule versions and webhook subscriptions write one entry each."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from tests.audit.conftest import entries_of, one_entry, tx_headers
from tests.rules.test_rules_api import next_version, own_rule, unique_code


async def test_defect_raised_and_moved(
    client: httpx.AsyncClient, app: FastAPI, make_tenant: Any
) -> None:
    tenant = await make_tenant()
    building = await client.post(
        "/v1/buildings",
        json={"name": "T", "address": "1 St", "building_type": "office"},
        headers=tenant.admin.headers,
    )
    headers, tx = tx_headers(tenant.technician.headers)
    raised = await client.post(
        "/v1/defects",
        json={
            "building_id": building.json()["id"],
            "severity": "critical",
            "remark": "Hydrant valve seized",
        },
        headers=headers,
    )
    assert raised.status_code == 201, raised.text
    defect_id = raised.json()["id"]
    entry = await one_entry(app, tx)
    assert (entry.action, entry.subject_id, entry.payload["severity"]) == (
        "defect.raised",
        defect_id,
        "critical",
    )

    headers, tx = tx_headers(tenant.technician.headers)
    moved = await client.patch(
        f"/v1/defects/{defect_id}",
        json={"status": "acknowledged", "note": "on it"},
        headers=headers,
    )
    assert moved.status_code == 200, moved.text
    entry = await one_entry(app, tx)
    assert (entry.action, entry.payload["from"], entry.payload["to"]) == (
        "defect.status_changed",
        "open",
        "acknowledged",
    )

    headers, tx = tx_headers(tenant.technician.headers)
    edited = await client.patch(
        f"/v1/defects/{defect_id}", json={"remark": "Valve seized shut"}, headers=headers
    )
    assert edited.status_code == 200
    entry = await one_entry(app, tx)
    assert entry.action == "defect.updated"

    headers, tx = tx_headers(tenant.technician.headers)
    refused = await client.patch(
        f"/v1/defects/{defect_id}", json={"status": "closed"}, headers=headers
    )
    assert refused.status_code == 409
    assert await entries_of(app, tx) == []


async def test_rule_versions_published(
    client: httpx.AsyncClient, app: FastAPI, make_tenant: Any
) -> None:
    tenant = await make_tenant()
    code = unique_code()
    body = own_rule(code)
    headers, tx = tx_headers(tenant.admin.headers)
    created = await client.post("/v1/rules", json=body, headers=headers)
    assert created.status_code == 201, created.text
    entry = await one_entry(app, tx)
    assert (entry.action, entry.payload["code"], entry.payload["version"]) == (
        "rule.version_published",
        code,
        "1.0.0",
    )
    headers, tx = tx_headers(tenant.admin.headers)
    published = await client.post(
        f"/v1/rules/{code}/versions", json=next_version(body, "1.1.0"), headers=headers
    )
    assert published.status_code == 201
    assert (await one_entry(app, tx)).payload["version"] == "1.1.0"


async def test_webhook_subscriptions(
    client: httpx.AsyncClient, app: FastAPI, make_tenant: Any
) -> None:
    tenant = await make_tenant()
    headers, tx = tx_headers(tenant.admin.headers)
    created = await client.post(
        "/v1/webhooks",
        json={"url": "https://hooks.example.com/firemode", "event_types": ["defect.raised"]},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    entry = await one_entry(app, tx)
    assert entry.action == "webhook_subscription.created"
    assert created.json()["secret"] not in str(entry.payload)
    url = f"/v1/webhooks/{created.json()['id']}"
    headers, tx = tx_headers(tenant.admin.headers)
    assert (await client.patch(url, json={"active": False}, headers=headers)).status_code == 200
    entry = await one_entry(app, tx)
    assert (entry.action, entry.payload) == (
        "webhook_subscription.updated",
        {"changes": {"active": False}},
    )
    headers, tx = tx_headers(tenant.admin.headers)
    assert (await client.delete(url, headers=headers)).status_code == 204
    assert (await one_entry(app, tx)).action == "webhook_subscription.deleted"
