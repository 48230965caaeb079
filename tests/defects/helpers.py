"""Helpers for the evaluation and defect tests: a building with equipment, a session moved
to in_progress, and checklist answers written through results sync."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from tests.buildings.helpers import new_asset, new_building, new_session
from tests.conftest import TestUser


@dataclass
class Site:
    building_id: str
    session_id: str
    assets: dict[str, str]  # name → asset id


async def answer(
    client: httpx.AsyncClient,
    user: TestUser,
    session_id: str,
    answers: dict[str, Any],
) -> httpx.Response:
    """Writes ``{pointer: value}`` (a None value deletes) into the session's results."""
    changes = [
        {"op": "delete", "path": path}
        if value is None
        else {"op": "set", "path": path, "value": value}
        for path, value in answers.items()
    ]
    return await client.post(
        f"/v1/tests/sessions/{session_id}/results",
        json={"device_id": "tablet-1", "changes": changes},
        headers={**user.headers, "Idempotency-Key": uuid.uuid4().hex},
    )


def pointer(asset_id: str, rule_code: str, item_key: str) -> str:
    return f"/checklists/{asset_id}/{rule_code}/{item_key}"


async def move(client: httpx.AsyncClient, user: TestUser, session_id: str, *statuses: str) -> None:
    for status in statuses:
        response = await client.patch(
            f"/v1/tests/sessions/{session_id}", json={"status": status}, headers=user.headers
        )
        assert response.status_code == 200, response.text


async def site(
    client: httpx.AsyncClient,
    admin: TestUser,
    technician: TestUser,
    *,
    assets: dict[str, dict[str, Any]],
    frequency: str | None = "6-monthly",
    start: bool = True,
) -> Site:
    building = await new_building(client, admin)
    ids = {}
    for name, fields in assets.items():
        ids[name] = (await new_asset(client, technician, building["id"], **fields))["id"]
    extra = {"frequency": frequency} if frequency else {}
    session = await new_session(client, technician, building["id"], **extra)
    if start:
        await move(client, technician, session["id"], "scheduled", "in_progress")
    return Site(building["id"], session["id"], ids)


async def evaluation(client: httpx.AsyncClient, user: TestUser, session_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/tests/sessions/{session_id}/evaluation", headers=user.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def outcomes(body: dict[str, Any], asset_id: str, rule_code: str) -> dict[str, str]:
    for asset in body["assets"]:
        if asset["asset_id"] == asset_id:
            for rule in asset["rules"]:
                if rule["rule_code"] == rule_code:
                    return {i["key"]: i["outcome"] for i in rule["items"]}
    raise AssertionError(f"{rule_code} not evaluated for {asset_id}")
