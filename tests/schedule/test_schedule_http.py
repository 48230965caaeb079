"""The schedule through HTTP: routines from the catalogue, the building schedule and the
due list with their statuses, baselines, tenancy and roles."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from src.app.buildings.models import AustralianState
from src.app.rules.frequency import Frequency
from src.app.schedule.calendar import WorkingDays, add_months, scheduled_date, tolerance_window
from src.app.schedule.service import local_today
from tests.buildings.helpers import MakeTenant, new_asset, new_building, walk

SPRINKLER_MONTHLY = "AS1851-SPRINKLER-1M"
SPRINKLER_YEARLY = "AS1851-SPRINKLER-12M"


def _today(app: FastAPI) -> date:
    return local_today(app.state.settings)


async def _schedule(
    client: httpx.AsyncClient, user: Any, building_id: str, **params: str
) -> list[dict[str, Any]]:
    return await walk(
        client,
        f"/v1/buildings/{building_id}/schedule",
        user,
        limit=7,
        params=list(params.items()),
    )


async def test_an_assets_routines_and_occurrences_follow_the_catalogue(
    client: httpx.AsyncClient, app: FastAPI, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    today = _today(app)
    installed = add_months(today, -3) - timedelta(days=2)
    building = await new_building(client, tenant.admin, state="NSW")
    assert building["state"] == "NSW"
    asset = await new_asset(
        client,
        tenant.technician,
        building["id"],
        asset_type="sprinkler_valve_set",
        installed_on=installed.isoformat(),
    )
    response = await client.get(f"/v1/assets/{asset['id']}/routines", headers=tenant.viewer.headers)
    assert response.status_code == 200, response.text
    routines = response.json()["data"]
    assert [(r["rule_code"], r["frequency"]) for r in routines] == [
        (SPRINKLER_YEARLY, "yearly"),
        (SPRINKLER_MONTHLY, "monthly"),
    ]
    assert {r["effective_baseline_on"] for r in routines} == {installed.isoformat()}
    assert {r["baseline_source"] for r in routines} == {"installed_on"}

    horizon_end = today + timedelta(days=365)
    items = await _schedule(client, tenant.viewer, building["id"], to=horizon_end.isoformat())
    nsw = WorkingDays(AustralianState.NSW)
    routine_frequencies = (
        (SPRINKLER_MONTHLY, Frequency.monthly),
        (SPRINKLER_YEARLY, Frequency.yearly),
    )
    expected = sorted(
        (scheduled_date(installed, f, n), code)
        for code, f in routine_frequencies
        for n in range(1, 16)
        if scheduled_date(installed, f, n) <= horizon_end
    )
    found = [(date.fromisoformat(i["due_on"]), i["rule_code"]) for i in items]
    assert [d for d, _ in found] == sorted(d for d, _ in found)  # soonest first
    assert sorted(found) == expected
    for item in items:
        due = date.fromisoformat(item["due_on"])
        window = tolerance_window(due, Frequency(item["frequency"]), nsw)
        assert (item["window_start"], item["window_end"]) == (
            window.start.isoformat(),
            window.end.isoformat(),
        )
        if due >= today:
            assert item["status"] == "due"
        elif window.end >= today:
            assert item["status"] == "overdue"
        else:
            assert item["status"] == "missed" and item["out_of_tolerance"] is True
    # The first monthly occurrences are long past their windows: out of tolerance.
    missed = await _schedule(client, tenant.viewer, building["id"], status="out_of_tolerance")
    assert [m["due_on"] for m in missed] == [i["due_on"] for i in items if i["status"] == "missed"]
    assert len(missed) >= 2
