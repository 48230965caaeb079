"""The offline bundle through HTTP: content, gzip, ETag / 304, since=, subsets, the cap,
tenancy and roles."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from src.app.schedule.calendar import add_months
from src.app.schedule.service import local_today
from tests.buildings.helpers import MakeTenant, assert_error, new_asset, new_building, new_session
from tests.conftest import TestUser


async def _bundle(
    client: httpx.AsyncClient, user: TestUser, building_id: str, **params: Any
) -> httpx.Response:
    return await client.get(
        f"/v1/buildings/{building_id}/offline-bundle",
        params={k: v for k, v in params.items() if k != "headers"},
        headers={**user.headers, **params.get("headers", {})},
    )


async def _post_results(
    client: httpx.AsyncClient, user: TestUser, session_id: str, value: Any
) -> None:
    response = await client.post(
        f"/v1/tests/sessions/{session_id}/results",
        json={"changes": [{"op": "set", "path": "/assets/a1/pressure_kpa", "value": value}]},
        headers={**user.headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code == 200, response.text


async def test_the_bundle_carries_what_a_technician_needs(
    client: httpx.AsyncClient, app: FastAPI, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    today = local_today(app.state.settings)
    building = await new_building(client, tenant.admin, state="VIC")
    # Installed six months less a week ago: its 6-monthly routine is due within the week.
    installed = add_months(today, -6) + timedelta(days=7)
    extinguisher = await new_asset(
        client,
        tenant.technician,
        building["id"],
        asset_type="fire_extinguisher",
        installed_on=installed.isoformat(),
        attributes={"floor": "B1"},
    )
    door = await new_asset(
        client, tenant.technician, building["id"], asset_type="fire_door", attributes={"floor": "2"}
    )
    defect = await client.post(
        "/v1/defects",
        json={"asset_id": door["id"], "severity": "critical", "remark": "Door closer broken"},
        headers=tenant.technician.headers,
    )
    assert defect.status_code == 201, defect.text
    cancelled = await client.post(
        "/v1/defects",
        json={"asset_id": door["id"], "severity": "non_critical", "remark": "Sign missing"},
        headers=tenant.technician.headers,
    )
    response = await client.patch(
        f"/v1/defects/{cancelled.json()['id']}",
        json={"status": "cancelled", "note": "Raised by mistake"},
        headers=tenant.admin.headers,
    )
    assert response.status_code == 200, response.text
    open_session = await new_session(client, tenant.technician, building["id"])
    await _post_results(client, tenant.technician, open_session["id"], 1200)
    done = await new_session(client, tenant.technician, building["id"])
    for status in ("scheduled", "in_progress", "completed"):
        response = await client.patch(
            f"/v1/tests/sessions/{done['id']}",
            json={"status": status},
            headers=tenant.technician.headers,
        )
        assert response.status_code == 200, response.text

    response = await _bundle(client, tenant.viewer, building["id"])
    assert response.status_code == 200, response.text
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["content-type"] == "application/json"
    assert response.headers["etag"].startswith('W/"')
    body = response.json()
    assert body["format"] == 1 and body["since"] is None
    assert body["building"]["id"] == building["id"] and body["building"]["state"] == "VIC"
    assert {a["id"] for a in body["assets"]} == {extinguisher["id"], door["id"]}
    assert sorted(body["asset_ids"]) == sorted([extinguisher["id"], door["id"]])
    codes = {r["code"] for r in body["rules"]}
    assert {"AS1851-EXT-6M", "AS1851-EXT-12M", "AS1851-DOOR-6M"} <= codes
    assert all(r["asset_type"] in ("fire_extinguisher", "fire_door") for r in body["rules"])
    due = [(r["asset_id"], r["rule_code"]) for r in body["routines_due"]]
    assert (extinguisher["id"], "AS1851-EXT-6M") in due
    assert all(r["status"] in ("due", "overdue") for r in body["routines_due"])
    # Open defects only.
    assert [d["id"] for d in body["defects"]] == [defect.json()["id"]]
    # Open sessions only, each with its results document and version.
    assert [s["session"]["id"] for s in body["sessions"]] == [open_session["id"]]
    assert body["sessions"][0]["results_version"] == 1
    assert body["sessions"][0]["results"] == {"assets": {"a1": {"pressure_kpa": 1200}}}
    assert isinstance(body["bundle_version"], int) and body["server_timestamp"].endswith("Z")

    # Unchanged: 304 for the same ETag; any change gives another ETag.
    etag = response.headers["etag"]
    again = await _bundle(
        client, tenant.technician, building["id"], headers={"If-None-Match": etag}
    )
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    await _post_results(client, tenant.technician, open_session["id"], 1300)
    changed = await _bundle(client, tenant.viewer, building["id"], headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert changed.json()["sessions"][0]["results_version"] == 2

    # Subsets: by floor, by asset type.
    floor = (await _bundle(client, tenant.viewer, building["id"], floor="B1")).json()
    assert [a["id"] for a in floor["assets"]] == [extinguisher["id"]]
    assert {r["asset_id"] for r in floor["routines_due"]} <= {extinguisher["id"]}
    doors = (await _bundle(client, tenant.viewer, building["id"], asset_type="fire_door")).json()
    assert [a["id"] for a in doors["assets"]] == [door["id"]]
    assert {r["asset_type"] for r in doors["rules"]} == {"fire_door"}


async def test_since_returns_only_what_changed(
    client: httpx.AsyncClient, app: FastAPI, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    building = await new_building(client, tenant.admin)
    first = await new_asset(client, tenant.technician, building["id"], asset_type="fire_door")
    second = await new_asset(client, tenant.technician, building["id"], asset_type="fire_door")
    full = (await _bundle(client, tenant.technician, building["id"])).json()
    assert len(full["assets"]) == 2
    # The version trails the clock by a minute (transactions in flight): everything changed
    # in the last minute comes again, so an immediate delta repeats both assets...
    delta = (
        await _bundle(client, tenant.technician, building["id"], since=full["bundle_version"])
    ).json()
    assert delta["since"] == full["bundle_version"]
    assert {a["id"] for a in delta["assets"]} == {first["id"], second["id"]}
    # ...and a version from after the change returns nothing but the ids.
    later = delta["bundle_version"] + 3_600_000_000
    quiet = (await _bundle(client, tenant.technician, building["id"], since=later)).json()
    assert quiet["assets"] == [] and quiet["sessions"] == [] and quiet["rules"] == []
    assert sorted(quiet["asset_ids"]) == sorted([first["id"], second["id"]])


async def test_over_the_cap_is_413_asking_for_a_subset(
    client: httpx.AsyncClient, app: FastAPI, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    building = await new_building(client, tenant.admin)
    for index in range(40):
        await new_asset(
            client,
            tenant.technician,
            building["id"],
            asset_type="fire_extinguisher",
            attributes={"floor": str(index % 4), "note": uuid.uuid4().hex * 8},
        )
    settings = app.state.settings
    app.state.settings = settings.model_copy(update={"max_bundle_bytes": 4096})
    try:
        refused = await _bundle(client, tenant.technician, building["id"])
        body = assert_error(refused, 413)
        assert "floor=" in body["detail"] and "asset_type=" in body["detail"]
        subset = await _bundle(client, tenant.technician, building["id"], floor="1")
        assert subset.status_code == 200, subset.text
        assert len(subset.json()["assets"]) == 10
    finally:
        app.state.settings = settings


async def test_bundle_tenancy_and_roles(client: httpx.AsyncClient, make_tenant: MakeTenant) -> None:
    tenant, other = await make_tenant(), await make_tenant()
    building = await new_building(client, tenant.admin)
    for user in (tenant.admin, tenant.technician, tenant.viewer):
        assert (await _bundle(client, user, building["id"])).status_code == 200
    for user in (other.admin, other.technician, other.viewer):
        assert_error(await _bundle(client, user, building["id"]), 404)
    assert_error(await _bundle(client, tenant.viewer, str(uuid.uuid4())), 404)
    anonymous = await client.get(f"/v1/buildings/{building['id']}/offline-bundle")
    assert_error(anonymous, 401)
