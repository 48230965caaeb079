"""The schedule through HTTP: routines from the catalogue, the building schedule and the
due list with their statuses, baselines, tenancy and roles."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from src.app.buildings.models import AustralianState
from src.app.core.outbox import OutboxEvent
from src.app.rules.frequency import Frequency
from src.app.schedule.calendar import WorkingDays, add_months, scheduled_date, tolerance_window
from src.app.schedule.cli import run_sweep
from src.app.schedule.reporting import out_of_tolerance_occurrences
from src.app.schedule.service import local_today
from tests.buildings.helpers import MakeTenant, assert_error, new_asset, new_building, walk

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


async def _complete(client: httpx.AsyncClient, user: Any, session_id: str) -> None:
    for status in ("scheduled", "in_progress", "completed"):
        response = await client.patch(
            f"/v1/tests/sessions/{session_id}", json={"status": status}, headers=user.headers
        )
        assert response.status_code == 200, response.text


async def test_a_session_declaring_routines_marks_them_done_and_the_yearly_covers_the_monthly(
    client: httpx.AsyncClient, app: FastAPI, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    today = _today(app)
    # Installed a year ago: today the yearly and the twelfth monthly are both due.
    installed = add_months(today, -12)
    building = await new_building(client, tenant.admin, state="QLD")
    valve = await new_asset(
        client,
        tenant.technician,
        building["id"],
        asset_type="sprinkler_valve_set",
        installed_on=installed.isoformat(),
    )
    other = await new_asset(
        client,
        tenant.technician,
        building["id"],
        asset_type="sprinkler_valve_set",
        installed_on=installed.isoformat(),
    )
    # A routine the asset does not have is refused, pointing at the entry.
    bad = await client.post(
        "/v1/tests/sessions",
        json={
            "building_id": building["id"],
            "session_name": "Yearly",
            "routines": [
                {"asset_id": valve["id"], "rule_code": SPRINKLER_YEARLY},
                {"asset_id": valve["id"], "rule_code": "AS1851-EXT-6M"},
            ],
        },
        headers=tenant.technician.headers,
    )
    assert assert_error(bad, 422)["errors"][0]["pointer"] == "/routines/1"
    created = await client.post(
        "/v1/tests/sessions",
        json={
            "building_id": building["id"],
            "session_name": "Yearly",
            "routines": [{"asset_id": valve["id"], "rule_code": SPRINKLER_YEARLY}],
        },
        headers=tenant.technician.headers,
    )
    assert created.status_code == 201, created.text
    session_id = created.json()["id"]
    bundle = await client.get(
        f"/v1/buildings/{building['id']}/offline-bundle", headers=tenant.technician.headers
    )
    assert bundle.json()["sessions"][0]["routines"] == [
        {"asset_id": valve["id"], "rule_code": SPRINKLER_YEARLY}
    ]
    await _complete(client, tenant.technician, session_id)

    done = await _schedule(client, tenant.viewer, building["id"], status="done")
    # The yearly and the monthly scheduled on the same day, on the declared asset only.
    assert sorted((d["asset_id"], d["rule_code"]) for d in done) == [
        (valve["id"], SPRINKLER_YEARLY),
        (valve["id"], SPRINKLER_MONTHLY),
    ]
    for item in done:
        assert item["due_on"] == today.isoformat()
        assert item["done_on"] == today.isoformat() or item["outcome"] in ("early", "late")
        assert item["done_session_id"] == session_id
        assert item["status"] == "done" and item["out_of_tolerance"] is False
    still_due = await _schedule(
        client, tenant.viewer, building["id"], status="due", to=today.isoformat()
    )
    assert {(d["asset_id"], d["due_on"]) for d in still_due} == {(other["id"], today.isoformat())}


async def test_a_session_with_a_frequency_covers_the_building_up_to_it(
    client: httpx.AsyncClient, app: FastAPI, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    today = _today(app)
    building = await new_building(client, tenant.admin, state="NSW")
    valves = [
        await new_asset(
            client,
            tenant.technician,
            building["id"],
            asset_type="sprinkler_valve_set",
            installed_on=add_months(today, -1).isoformat(),
        )
        for _ in range(2)
    ]
    session = await client.post(
        "/v1/tests/sessions",
        json={"building_id": building["id"], "session_name": "Monthly", "frequency": "monthly"},
        headers=tenant.technician.headers,
    )
    await _complete(client, tenant.technician, session.json()["id"])
    done = await _schedule(client, tenant.viewer, building["id"], status="done")
    assert sorted(d["asset_id"] for d in done) == sorted(v["id"] for v in valves)
    assert {(d["rule_code"], d["due_on"], d["outcome"]) for d in done} == {
        (SPRINKLER_MONTHLY, today.isoformat(), "on_time")
    }


async def test_going_out_of_tolerance_writes_one_event(
    client: httpx.AsyncClient, app: FastAPI, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    today = _today(app)
    building = await new_building(client, tenant.admin, state="SA")
    installed = add_months(today, -3) - timedelta(days=20)
    valve = await new_asset(
        client,
        tenant.technician,
        building["id"],
        asset_type="sprinkler_valve_set",
        installed_on=installed.isoformat(),
    )
    # Missed before the asset was registered: listed as out of tolerance, but history
    # (no event).
    missed = await _schedule(client, tenant.viewer, building["id"], status="out_of_tolerance")
    assert len(missed) == 3
    assert await _events(app, tenant.organisation_id) == []

    # Forty days on, the next monthly occurrence's window has ended unserviced.
    later = today + timedelta(days=40)
    assert await run_sweep(app.state.settings, later) >= 1
    events = await _events(app, tenant.organisation_id)
    fourth = scheduled_date(installed, Frequency.monthly, 4)
    assert [(e["asset_id"], e["rule_code"], e["due_on"]) for e in events] == [
        (valve["id"], SPRINKLER_MONTHLY, fourth.isoformat())
    ]
    window = tolerance_window(fourth, Frequency.monthly, WorkingDays(AustralianState.SA))
    assert events[0]["window_end"] == window.end.isoformat() and events[0]["done_on"] is None
    assert events[0]["building_id"] == building["id"]
    # Once only.
    await run_sweep(app.state.settings, later)
    assert len(await _events(app, tenant.organisation_id)) == 1
    # What a report reads: all four, soonest first.
    async with app.state.database.sessionmaker() as db:
        items = await out_of_tolerance_occurrences(
            db,
            organisation_id=tenant.organisation_id,
            building_id=uuid.UUID(building["id"]),
            date_from=installed,
            date_to=later,
            today=later,
        )
    assert [(i.due_on, i.status.value, i.rule_code) for i in items] == [
        (scheduled_date(installed, Frequency.monthly, n), "missed", SPRINKLER_MONTHLY)
        for n in range(1, 5)
    ]


async def _events(app: FastAPI, organisation_id: Any) -> list[dict[str, Any]]:
    async with app.state.database.sessionmaker() as db:
        rows = (
            await db.execute(
                select(OutboxEvent.payload)
                .where(
                    OutboxEvent.organisation_id == organisation_id,
                    OutboxEvent.event_type == "schedule.out_of_tolerance",
                )
                .order_by(OutboxEvent.created_at)
            )
        ).scalars()
        return list(rows)


async def test_admins_set_baselines_and_dates_follow(
    client: httpx.AsyncClient, app: FastAPI, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    today = _today(app)
    building = await new_building(client, tenant.admin)
    door = await new_asset(client, tenant.technician, building["id"], asset_type="fire_door")
    routines_url = f"/v1/assets/{door['id']}/routines"
    listed = (await client.get(routines_url, headers=tenant.viewer.headers)).json()["data"]
    assert {r["effective_baseline_on"] for r in listed} == {None}  # no baseline, no dates
    assert await _schedule(client, tenant.viewer, building["id"]) == []

    baseline = add_months(today, -5)
    response = await client.put(
        f"/v1/assets/{door['id']}/baseline",
        json={"baseline_on": baseline.isoformat()},
        headers=tenant.admin.headers,
    )
    assert response.status_code == 200, response.text
    assert {
        (r["effective_baseline_on"], r["baseline_source"]) for r in response.json()["data"]
    } == {(baseline.isoformat(), "asset")}
    own = add_months(today, -2)
    response = await client.put(
        f"/v1/assets/{door['id']}/routines/AS1851-DOOR-6M/baseline",
        json={"baseline_on": own.isoformat()},
        headers=tenant.admin.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["baseline_source"] == "routine"
    until = add_months(today, 7).isoformat()
    items = await _schedule(client, tenant.viewer, building["id"], to=until)
    assert {(i["rule_code"], i["due_on"]) for i in items} == {
        ("AS1851-DOOR-6M", add_months(own, 6).isoformat()),
        ("AS1851-DOOR-12M", add_months(baseline, 12).isoformat()),
    }
    unknown = await client.put(
        f"/v1/assets/{door['id']}/routines/NOPE/baseline",
        json={"baseline_on": None},
        headers=tenant.admin.headers,
    )
    assert_error(unknown, 404)


async def test_schedule_routes_tenancy_and_roles(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant, other = await make_tenant(), await make_tenant()
    building = await new_building(client, tenant.admin)
    door = await new_asset(client, tenant.technician, building["id"], asset_type="fire_door")
    reads = [
        f"/v1/buildings/{building['id']}/schedule",
        f"/v1/schedule/due?building_id={building['id']}",
        f"/v1/assets/{door['id']}/routines",
    ]
    for url in reads:
        for user in (tenant.admin, tenant.technician, tenant.viewer):
            assert (await client.get(url, headers=user.headers)).status_code == 200, url
        for user in (other.admin, other.viewer):
            assert_error(await client.get(url, headers=user.headers), 404)
    assert (await client.get("/v1/schedule/due", headers=other.viewer.headers)).json() == {
        "data": [],
        "next_cursor": None,
    }
    writes = [
        f"/v1/assets/{door['id']}/baseline",
        f"/v1/assets/{door['id']}/routines/AS1851-DOOR-6M/baseline",
    ]
    body = {"baseline_on": "2026-01-01"}
    for url in writes:
        for user in (tenant.technician, tenant.viewer):
            assert_error(await client.put(url, json=body, headers=user.headers), 403)
        assert_error(await client.put(url, json=body, headers=other.admin.headers), 404)
        assert (await client.put(url, json=body, headers=tenant.admin.headers)).status_code == 200


async def test_list_parameters_are_checked(
    client: httpx.AsyncClient, app: FastAPI, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    today = _today(app)
    inverted = await client.get(
        "/v1/schedule/due",
        params={"from": today.isoformat(), "to": (today - timedelta(days=1)).isoformat()},
        headers=tenant.viewer.headers,
    )
    assert_error(inverted, 422)
    too_far = await client.get(
        "/v1/schedule/due",
        params={"to": (today + timedelta(days=5000)).isoformat()},
        headers=tenant.viewer.headers,
    )
    assert_error(too_far, 422)
    assert_error(
        await client.get("/v1/schedule/due?status=late", headers=tenant.viewer.headers), 422
    )
    assert_error(
        await client.get("/v1/schedule/due?cursor=forged.cursor", headers=tenant.viewer.headers),
        400,
    )
