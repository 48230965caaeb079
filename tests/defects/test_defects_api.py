"""Defects over HTTP: raising, listing, history, every transition, roles and tenancy."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select, update

from src.app.core.outbox import OutboxEvent
from src.app.defects.models import Defect
from tests.buildings.helpers import MakeTenant, assert_error, new_asset, new_building, walk
from tests.conftest import Tenant, TestUser


async def raise_one(
    client: httpx.AsyncClient, user: TestUser, asset_id: str, **fields: Any
) -> dict[str, Any]:
    body = {"asset_id": asset_id, "severity": "non_critical", "remark": "Seal broken", **fields}
    response = await client.post("/v1/defects", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def patch(
    client: httpx.AsyncClient, user: TestUser, defect_id: str, **body: Any
) -> httpx.Response:
    return await client.patch(f"/v1/defects/{defect_id}", json=body, headers=user.headers)


async def equipment(client: httpx.AsyncClient, tenant: Tenant) -> tuple[str, str]:
    building = await new_building(client, tenant.admin)
    asset = await new_asset(client, tenant.technician, building["id"])
    return building["id"], asset["id"]


async def events_of(app: FastAPI, defect_id: str) -> list[tuple[str, dict[str, Any]]]:
    async with app.state.database.sessionmaker() as db:
        rows = (await db.execute(select(OutboxEvent).order_by(OutboxEvent.created_at))).scalars()
        # Other domains' events (the schedule's) share the outbox: only this defect's count.
        return [
            (e.event_type, e.payload)
            for e in rows
            if e.payload.get("defect", {}).get("id") == defect_id
        ]


async def test_raise_by_hand(
    client: httpx.AsyncClient, make_tenant: MakeTenant, app: FastAPI
) -> None:
    t = await make_tenant()
    building_id, asset_id = await equipment(client, t)
    created = await raise_one(client, t.technician, asset_id, severity="critical")
    assert created["building_id"] == building_id
    assert created["status"] == "open" and created["source"] == "manual"
    assert created["raised_by"] == str(t.technician.id)
    raised_at = datetime.fromisoformat(created["created_at"])
    assert datetime.fromisoformat(created["response_due_at"]) == raised_at + timedelta(hours=24)
    assert created["overdue"] is False
    detail = (await client.get(f"/v1/defects/{created['id']}", headers=t.viewer.headers)).json()
    assert [(h["from_status"], h["to_status"]) for h in detail["history"]] == [(None, "open")]
    events = await events_of(app, created["id"])
    assert [e[0] for e in events] == ["defect.raised"]

    # Linked to a rule's item; a building-only defect has no deadline by default.
    linked = await raise_one(
        client, t.admin, asset_id, rule_code="AS1851-EXT-6M", item_key="seal_pin"
    )
    assert (linked["rule_code"], linked["rule_version"], linked["item_key"]) == (
        "AS1851-EXT-6M",
        "1.0.0",
        "seal_pin",
    )
    assert linked["response_due_at"] is None
    plain = await client.post(
        "/v1/defects",
        json={"building_id": building_id, "severity": "recommendation", "remark": "Add a sign"},
        headers=t.technician.headers,
    )
    assert plain.status_code == 201 and plain.json()["asset_id"] is None


async def test_raise_refusals_roles_tenancy_and_idempotency(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t, other = await make_tenant(), await make_tenant()
    _building, asset_id = await equipment(client, t)
    body = {"asset_id": asset_id, "severity": "critical", "remark": "Panel dead"}
    assert_error(await client.post("/v1/defects", json=body, headers=t.viewer.headers), 403)
    assert_error(await client.post("/v1/defects", json=body, headers=other.technician.headers), 404)
    assert_error(await client.post("/v1/defects", json=body), 401)
    no_building = {"severity": "critical", "remark": "x"}
    assert_error(
        await client.post("/v1/defects", json=no_building, headers=t.technician.headers), 422
    )
    other_building = (await new_building(client, other.admin))["id"]
    assert_error(
        await client.post(
            "/v1/defects",
            json={**no_building, "building_id": other_building},
            headers=t.technician.headers,
        ),
        404,
    )
    assert_error(
        await client.post(
            "/v1/defects",
            json={**body, "rule_code": "AS1851-EXT-6M", "item_key": "nope"},
            headers=t.technician.headers,
        ),
        422,
    )
    assert_error(
        await client.post(
            "/v1/defects", json={**body, "severity": "catastrophic"}, headers=t.technician.headers
        ),
        422,
    )
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = await client.post("/v1/defects", json=body, headers={**t.technician.headers, **key})
    again = await client.post("/v1/defects", json=body, headers={**t.technician.headers, **key})
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    listed = await walk(client, "/v1/defects", t.viewer, limit=50, params=[("asset_id", asset_id)])
    assert [d["id"] for d in listed] == [first.json()["id"]]

    defect_id = first.json()["id"]
    for user in (other.admin, other.technician):
        assert_error(await client.get(f"/v1/defects/{defect_id}", headers=user.headers), 404)
        assert_error(await patch(client, user, defect_id, status="acknowledged"), 404)
    assert_error(await client.get(f"/v1/defects/{defect_id}", headers=other.viewer.headers), 404)
    assert_error(await patch(client, t.viewer, defect_id, status="acknowledged"), 403)
    assert_error(await client.get(f"/v1/defects/{uuid.uuid4()}", headers=t.viewer.headers), 404)
    theirs = await walk(client, "/v1/defects", other.viewer, limit=50)
    assert defect_id not in {d["id"] for d in theirs}


async def test_full_life_cycle_with_history_and_events(
    client: httpx.AsyncClient, make_tenant: MakeTenant, app: FastAPI
) -> None:
    t = await make_tenant()
    _building, asset_id = await equipment(client, t)
    defect = await raise_one(client, t.technician, asset_id, severity="critical")
    d = defect["id"]
    steps = [
        (t.technician, "acknowledged", "Seen on site"),
        (t.admin, "quoted", "Quote Q-17 sent"),
        (t.admin, "repair_scheduled", "Booked for Friday"),
        (t.technician, "repaired", "Replaced the valve"),
        (t.admin, "verified", "Checked it holds pressure"),
        (t.admin, "closed", "Done"),
    ]
    for user, status, note in steps:
        response = await patch(client, user, d, status=status, note=note)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == status
    body = (await client.get(f"/v1/defects/{d}", headers=t.viewer.headers)).json()
    assert body["acknowledged_at"] is not None
    history = [
        (h["from_status"], h["to_status"], h["note"], h["actor_id"]) for h in body["history"]
    ]
    expected: list[tuple[str | None, str, str, str]] = [(None, "open", "", str(t.technician.id))]
    previous = "open"
    for user, status, note in steps:
        expected.append((previous, status, note, str(user.id)))
        previous = status
    assert history == expected
    events = await events_of(app, d)
    assert [e[0] for e in events] == ["defect.raised"] + ["defect.status_changed"] * 6
    assert events[1][1]["from_status"] == "open" and events[1][1]["to_status"] == "acknowledged"
    # Closed is final: any move or edit is 409; re-sending the status is a no-op.
    refused = await patch(client, t.admin, d, status="open")
    assert assert_error(refused, 409)["detail"] == "The defect is 'closed'; no status may follow it"
    assert_error(await patch(client, t.admin, d, remark="edit"), 409)
    assert (await patch(client, t.admin, d, status="closed")).status_code == 200


async def test_illegal_moves_name_the_allowed_statuses(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    _building, asset_id = await equipment(client, t)
    d = (await raise_one(client, t.technician, asset_id))["id"]
    for target in ("quoted", "repair_scheduled", "repaired", "verified", "closed"):
        body = assert_error(await patch(client, t.technician, d, status=target), 409)
        assert body["detail"] == (
            f"A defect cannot go from 'open' to '{target}'; the allowed next statuses are "
            "'acknowledged', 'cancelled'"
        )
    assert_error(await patch(client, t.technician, d, status="reopened"), 422)
    # Sending the current status is a no-op, recorded nowhere.
    same = await patch(client, t.technician, d, status="open")
    assert same.status_code == 200 and len(same.json()["history"]) == 1


async def test_verification_needs_another_person_and_failed_verification(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    _building, asset_id = await equipment(client, t)
    d = (await raise_one(client, t.technician, asset_id))["id"]
    for status in ("acknowledged", "repair_scheduled", "repaired"):
        assert (await patch(client, t.technician, d, status=status)).status_code == 200
    refused = await patch(client, t.technician, d, status="verified")
    assert "different person" in assert_error(refused, 403)["detail"]
    # Verification failed: back to repair_scheduled; the admin repairs, the technician verifies.
    assert (await patch(client, t.admin, d, status="repair_scheduled")).status_code == 200
    assert (await patch(client, t.admin, d, status="repaired")).status_code == 200
    assert_error(await patch(client, t.admin, d, status="verified"), 403)
    verified = await patch(client, t.technician, d, status="verified", note="Holds")
    assert verified.status_code == 200


async def test_cancellation_is_for_admins_with_a_reason(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    _building, asset_id = await equipment(client, t)
    d = (await raise_one(client, t.technician, asset_id))["id"]
    assert_error(await patch(client, t.technician, d, status="cancelled", note="dup"), 403)
    assert_error(await patch(client, t.admin, d, status="cancelled"), 422)
    assert_error(await patch(client, t.admin, d, status="cancelled", note="  "), 422)
    done = await patch(client, t.admin, d, status="cancelled", note="Raised twice")
    assert done.status_code == 200
    assert done.json()["cancel_reason"] == "Raised twice"
    assert_error(await patch(client, t.admin, d, status="acknowledged"), 409)


async def test_edits_are_kept_in_the_history(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    _building, asset_id = await equipment(client, t)
    d = await raise_one(client, t.technician, asset_id, severity="non_critical")
    assert d["response_due_at"] is None
    edited = await patch(
        client,
        t.technician,
        d["id"],
        severity="critical",
        evidence_ids=["ev-1"],
        note="Worse than thought",
    )
    assert edited.status_code == 200, edited.text
    body = edited.json()
    assert body["severity"] == "critical" and body["evidence_ids"] == ["ev-1"]
    # The deadline follows the severity while nobody has responded.
    created = datetime.fromisoformat(body["created_at"])
    assert datetime.fromisoformat(body["response_due_at"]) == created + timedelta(hours=24)
    last = body["history"][-1]
    assert (last["from_status"], last["to_status"]) == ("open", "open")
    assert last["changes"] == {
        "severity": ["non_critical", "critical"],
        "evidence_ids": [[], ["ev-1"]],
    }
    assert_error(await patch(client, t.technician, d["id"], remark=None), 422)


async def test_list_filters_overdue_and_deadlines(
    client: httpx.AsyncClient, make_tenant: MakeTenant, app: FastAPI
) -> None:
    t = await make_tenant()
    building_id, asset_id = await equipment(client, t)
    other_asset = (await new_asset(client, t.technician, building_id))["id"]
    critical = await raise_one(client, t.technician, asset_id, severity="critical")
    minor = await raise_one(client, t.technician, other_asset, severity="non_conformance")
    acked = await raise_one(client, t.technician, other_asset, severity="critical")
    assert (
        await patch(client, t.technician, acked["id"], status="acknowledged")
    ).status_code == 200
    # Age both critical defects past their deadline.
    async with app.state.database.sessionmaker() as db:
        past = datetime.now(UTC) - timedelta(hours=1)
        await db.execute(
            update(Defect)
            .where(Defect.id.in_([uuid.UUID(critical["id"]), uuid.UUID(acked["id"])]))
            .values(response_due_at=past)
        )
        await db.commit()

    async def ids(*params: tuple[str, str]) -> list[str]:
        return [
            d["id"] for d in await walk(client, "/v1/defects", t.viewer, limit=2, params=params)
        ]

    assert await ids() == [acked["id"], minor["id"], critical["id"]]
    assert await ids(("overdue", "true")) == [critical["id"]]
    assert await ids(("overdue", "false")) == [acked["id"], minor["id"]]
    assert await ids(("severity", "critical")) == [acked["id"], critical["id"]]
    assert await ids(("status", "acknowledged")) == [acked["id"]]
    assert await ids(("asset_id", other_asset)) == [acked["id"], minor["id"]]
    assert await ids(("building_id", building_id), ("status", "open")) == [
        minor["id"],
        critical["id"],
    ]
    listed = (await client.get(f"/v1/defects/{critical['id']}", headers=t.viewer.headers)).json()
    assert listed["overdue"] is True

    # Deadlines: defaults, then the organisation's own (admin only).
    defaults = (await client.get("/v1/defects/deadlines", headers=t.viewer.headers)).json()
    assert defaults == {
        "critical": 24,
        "non_critical": None,
        "non_conformance": None,
        "recommendation": None,
        "informational": None,
    }
    wanted = {**defaults, "critical": 4, "non_critical": 72}
    for user in (t.technician, t.viewer):
        assert_error(
            await client.put("/v1/defects/deadlines", json=wanted, headers=user.headers), 403
        )
    assert_error(
        await client.put(
            "/v1/defects/deadlines", json={"critical": 0, **{}}, headers=t.admin.headers
        ),
        422,
    )
    saved = await client.put("/v1/defects/deadlines", json=wanted, headers=t.admin.headers)
    assert saved.status_code == 200 and saved.json() == wanted
    fresh = await raise_one(client, t.technician, asset_id, severity="non_critical")
    created = datetime.fromisoformat(fresh["created_at"])
    assert datetime.fromisoformat(fresh["response_due_at"]) == created + timedelta(hours=72)
    other = await make_tenant()
    theirs = (await client.get("/v1/defects/deadlines", headers=other.viewer.headers)).json()
    assert theirs == defaults
