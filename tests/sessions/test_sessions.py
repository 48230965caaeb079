"""Test sessions: client-chosen ids, placeholders from results sync, the status life cycle,
filters, roles and tenancy."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from src.app.sessions.models import SessionStatus, TestSession
from tests.buildings.helpers import (
    MakeTenant,
    assert_error,
    count_rows,
    load,
    new_building,
    new_session,
    parse_timestamp,
    walk,
)
from tests.conftest import Tenant

SESSION_FIELDS = {
    "id",
    "building_id",
    "session_name",
    "frequency",
    "scheduled_for",
    "status",
    "started_at",
    "completed_at",
    "created_by",
    "created_at",
    "updated_at",
}


LIFE_CYCLE = ["draft", "scheduled", "in_progress", "completed"]


async def _advance(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], status: str
) -> dict[str, Any]:
    """Walk a new session one legal step at a time up to ``status``."""
    current: dict[str, Any] = (await client.get(url, headers=headers)).json()
    for step in LIFE_CYCLE[1 : LIFE_CYCLE.index(status) + 1]:
        response = await client.patch(url, json={"status": step}, headers=headers)
        assert response.status_code == 200, response.text
        current = response.json()
    assert current["status"] == status
    return current


async def _tenant_with_building(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> tuple[Tenant, str]:
    tenant = await make_tenant()
    building = await new_building(client, tenant.admin)
    return tenant, building["id"]


async def test_create_session_with_client_id(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant, building_id = await _tenant_with_building(client, make_tenant)
    session_id = str(uuid.uuid4())
    body = {
        "id": session_id,
        "building_id": building_id,
        "session_name": "December monthly",
        "frequency": "monthly",
        "scheduled_for": "2026-12-14",
    }
    response = await client.post("/v1/tests/sessions", json=body, headers=tenant.technician.headers)
    assert response.status_code == 201
    created = response.json()
    assert set(created) == SESSION_FIELDS
    assert {k: created[k] for k in body} == body
    assert created["status"] == "draft"
    assert created["created_by"] == str(tenant.technician.id)
    assert response.headers["location"] == f"/v1/tests/sessions/{session_id}"
    parse_timestamp(created["created_at"])
    got = await client.get(f"/v1/tests/sessions/{session_id}", headers=tenant.viewer.headers)
    assert got.status_code == 200
    assert got.json() == created


async def test_server_chooses_an_id_when_none_is_sent(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant, building_id = await _tenant_with_building(client, make_tenant)
    created = await new_session(client, tenant.admin, building_id)
    assert uuid.UUID(created["id"]).version == 4
    assert (created["frequency"], created["scheduled_for"]) == (None, None)


async def test_same_id_same_body_returns_the_existing_session(
    app: FastAPI, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant, building_id = await _tenant_with_building(client, make_tenant)
    body = {
        "id": str(uuid.uuid4()),
        "building_id": building_id,
        "session_name": "Yearly",
        "frequency": "yearly",
    }
    first = await client.post("/v1/tests/sessions", json=body, headers=tenant.technician.headers)
    assert first.status_code == 201
    # Another writer of the same organisation retrying the device's create.
    again = await client.post("/v1/tests/sessions", json=body, headers=tenant.admin.headers)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert "location" not in again.headers
    assert await count_rows(app, TestSession, tenant.organisation_id) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"session_name": "Another name"},
        {"frequency": "6-monthly"},
        {"frequency": None},
        {"scheduled_for": "2027-01-01"},
        "building",
    ],
)
async def test_same_id_different_body_is_409(
    client: httpx.AsyncClient, make_tenant: MakeTenant, change: dict[str, Any] | str
) -> None:
    tenant, building_id = await _tenant_with_building(client, make_tenant)
    body = {
        "id": str(uuid.uuid4()),
        "building_id": building_id,
        "session_name": "Quarterly",
        "frequency": "3-monthly",
        "scheduled_for": "2026-12-01",
    }
    original = (
        await client.post("/v1/tests/sessions", json=body, headers=tenant.technician.headers)
    ).json()
    if change == "building":
        change = {"building_id": (await new_building(client, tenant.admin))["id"]}
    assert isinstance(change, dict)
    response = await client.post(
        "/v1/tests/sessions", json={**body, **change}, headers=tenant.technician.headers
    )
    error = assert_error(response, 409)
    assert body["id"] in error["detail"]
    got = await client.get(f"/v1/tests/sessions/{body['id']}", headers=tenant.viewer.headers)
    assert got.json() == original


async def test_retry_after_a_patch_is_409(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    """'Same body' compares with the session as it is now: once renamed, the old create
    no longer matches, and the client is told to GET it."""
    tenant, building_id = await _tenant_with_building(client, make_tenant)
    body = {"id": str(uuid.uuid4()), "building_id": building_id, "session_name": "Old"}
    await client.post("/v1/tests/sessions", json=body, headers=tenant.technician.headers)
    await client.patch(
        f"/v1/tests/sessions/{body['id']}",
        json={"session_name": "New"},
        headers=tenant.technician.headers,
    )
    retry = await client.post("/v1/tests/sessions", json=body, headers=tenant.technician.headers)
    assert "GET it" in assert_error(retry, 409)["detail"]
    # A status change alone does not alter the create's fields: the retry still matches.
    await client.patch(
        f"/v1/tests/sessions/{body['id']}",
        json={"session_name": "Old", "status": "scheduled"},
        headers=tenant.technician.headers,
    )
    again = await client.post("/v1/tests/sessions", json=body, headers=tenant.technician.headers)
    assert again.status_code == 200
    assert again.json()["status"] == "scheduled"


async def test_another_organisations_id_is_409_and_leaks_nothing(
    app: FastAPI, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    a, building_a = await _tenant_with_building(client, make_tenant)
    b, building_b = await _tenant_with_building(client, make_tenant)
    theirs = await new_session(client, b.technician, building_b, session_name="B's secret visit")
    body = {"id": theirs["id"], "building_id": building_a, "session_name": "Mine"}
    response = await client.post("/v1/tests/sessions", json=body, headers=a.technician.headers)
    error = assert_error(response, 409)
    assert error["detail"] == f"The test session id {theirs['id']} is not available; choose another"
    for secret in (building_b, str(b.organisation_id), "secret", str(b.technician.id)):
        assert secret not in response.text
    assert_error(
        await client.get(f"/v1/tests/sessions/{theirs['id']}", headers=a.admin.headers), 404
    )
    got = await client.get(f"/v1/tests/sessions/{theirs['id']}", headers=b.viewer.headers)
    assert got.json() == theirs
    assert await count_rows(app, TestSession, a.organisation_id) == 0


async def _placeholder(app: FastAPI, tenant: Tenant, **fields: Any) -> uuid.UUID:
    """What results sync creates when results arrive before the session does."""
    session_id = uuid.uuid4()
    async with app.state.database.sessionmaker() as session:
        session.add(
            TestSession(
                id=session_id,
                organisation_id=tenant.organisation_id,
                building_id=None,
                session_name="",
                status=SessionStatus.draft.value,
                **fields,
            )
        )
        await session.commit()
    return session_id


async def test_create_adopts_the_results_sync_placeholder(
    app: FastAPI, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant, building_id = await _tenant_with_building(client, make_tenant)
    session_id = await _placeholder(app, tenant, created_by=tenant.admin.id)
    early = await client.post(
        f"/v1/tests/sessions/{session_id}/results",
        json={"changes": [{"op": "set", "path": "/test", "value": "data"}]},
        headers={**tenant.technician.headers, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert early.status_code == 200
    placeholder = (
        await client.get(f"/v1/tests/sessions/{session_id}", headers=tenant.viewer.headers)
    ).json()
    assert (placeholder["building_id"], placeholder["session_name"]) == (None, "")

    body = {
        "id": str(session_id),
        "building_id": building_id,
        "session_name": "Arrived late",
        "frequency": "monthly",
        "scheduled_for": "2026-11-30",
    }
    response = await client.post("/v1/tests/sessions", json=body, headers=tenant.technician.headers)
    assert response.status_code == 201
    adopted = response.json()
    assert {k: adopted[k] for k in body} == body
    assert adopted["status"] == "draft"
    assert adopted["created_at"] == placeholder["created_at"]
    assert adopted["created_by"] == str(tenant.admin.id)  # the first one to create it
    results = await client.get(
        f"/v1/tests/sessions/{session_id}/results", headers=tenant.viewer.headers
    )
    assert results.json()["document"] == {"test": "data"}  # the early results are kept
    assert await count_rows(app, TestSession, tenant.organisation_id) == 1

    again = await client.post("/v1/tests/sessions", json=body, headers=tenant.technician.headers)
    assert again.status_code == 200
    assert again.json() == adopted


async def test_adoption_fills_in_the_creator_when_unknown(
    app: FastAPI, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant, building_id = await _tenant_with_building(client, make_tenant)
    session_id = await _placeholder(app, tenant)
    created = await new_session(client, tenant.technician, building_id, id=str(session_id))
    assert created["created_by"] == str(tenant.technician.id)


async def test_another_organisations_placeholder_is_not_adopted(
    app: FastAPI, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    a, building_a = await _tenant_with_building(client, make_tenant)
    b = await make_tenant()
    session_id = await _placeholder(app, b)
    body = {"id": str(session_id), "building_id": building_a, "session_name": "Grab"}
    response = await client.post("/v1/tests/sessions", json=body, headers=a.technician.headers)
    assert_error(response, 409)
    row = await load(app, TestSession, session_id)
    assert (row.organisation_id, row.building_id, row.session_name) == (b.organisation_id, None, "")


async def test_placeholder_cannot_leave_draft_without_a_building(
    app: FastAPI, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant, building_id = await _tenant_with_building(client, make_tenant)
    session_id = await _placeholder(app, tenant)
    url = f"/v1/tests/sessions/{session_id}"
    headers = tenant.technician.headers
    error = assert_error(
        await client.patch(url, json={"status": "scheduled"}, headers=headers), 409
    )
    assert "building" in error["detail"]
    assert (await client.get(url, headers=headers)).json()["status"] == "draft"
    both = await client.patch(
        url, json={"status": "scheduled", "building_id": building_id}, headers=headers
    )
    assert both.status_code == 200
    assert (both.json()["status"], both.json()["building_id"]) == ("scheduled", building_id)


async def test_create_validation(
    app: FastAPI, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant, building_id = await _tenant_with_building(client, make_tenant)
    good = {"building_id": building_id, "session_name": "Monthly"}
    for body, pointer in [
        ({"session_name": "Monthly"}, "/building_id"),
        ({"building_id": building_id}, "/session_name"),
        ({**good, "session_name": "  "}, "/session_name"),
        ({**good, "session_name": "s" * 201}, "/session_name"),
        ({**good, "frequency": "fortnightly-ish"}, "/frequency"),
        ({**good, "scheduled_for": "next tuesday"}, "/scheduled_for"),
        ({**good, "id": "not-a-uuid"}, "/id"),
        ({**good, "building_id": "nope"}, "/building_id"),
        ({**good, "status": "completed"}, "/status"),
    ]:
        response = await client.post(
            "/v1/tests/sessions", json=body, headers=tenant.technician.headers
        )
        error = assert_error(response, 422)
        assert [e["pointer"] for e in error["errors"]] == [pointer], body
    assert await count_rows(app, TestSession, tenant.organisation_id) == 0


async def test_create_with_unknown_or_foreign_building_is_404(
    app: FastAPI, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    a = await make_tenant()
    _, building_b = await _tenant_with_building(client, make_tenant)
    for building_id in (building_b, str(uuid.uuid4())):
        body = {"id": str(uuid.uuid4()), "building_id": building_id, "session_name": "X"}
        response = await client.post("/v1/tests/sessions", json=body, headers=a.technician.headers)
        assert assert_error(response, 404)["detail"] == f"Building {building_id} does not exist"
        assert_error(
            await client.get(f"/v1/tests/sessions/{body['id']}", headers=a.admin.headers), 404
        )
    assert await count_rows(app, TestSession, a.organisation_id) == 0


async def test_viewer_cannot_write_sessions(
    app: FastAPI, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant, building_id = await _tenant_with_building(client, make_tenant)
    existing = await new_session(client, tenant.technician, building_id)
    body = {"building_id": building_id, "session_name": "Viewer's"}
    assert_error(
        await client.post("/v1/tests/sessions", json=body, headers=tenant.viewer.headers), 403
    )
    url = f"/v1/tests/sessions/{existing['id']}"
    for change in ({"session_name": "Renamed"}, {"status": "scheduled"}):
        assert_error(await client.patch(url, json=change, headers=tenant.viewer.headers), 403)
    assert (await client.get(url, headers=tenant.viewer.headers)).json() == existing
    assert await count_rows(app, TestSession, tenant.organisation_id) == 1


async def test_unauthenticated(client: httpx.AsyncClient) -> None:
    assert assert_error(await client.get("/v1/tests/sessions"), 401)["error_code"] == "FIRE-401"
    assert_error(await client.get(f"/v1/tests/sessions/{uuid.uuid4()}"), 401)


async def test_full_life_cycle(client: httpx.AsyncClient, make_tenant: MakeTenant) -> None:
    tenant, building_id = await _tenant_with_building(client, make_tenant)
    created = await new_session(client, tenant.technician, building_id)
    url = f"/v1/tests/sessions/{created['id']}"
    previous = created
    for status in ("scheduled", "in_progress", "completed"):
        response = await client.patch(
            url, json={"status": status}, headers=tenant.technician.headers
        )
        assert response.status_code == 200, response.text
        current = response.json()
        assert current["status"] == status
        assert parse_timestamp(current["updated_at"]) > parse_timestamp(previous["updated_at"])
        previous = current


ILLEGAL = [
    ("draft", "in_progress", "'scheduled'"),
    ("draft", "completed", "'scheduled'"),
    ("scheduled", "draft", "'in_progress'"),
    ("scheduled", "completed", "'in_progress'"),
    ("in_progress", "draft", "'completed'"),
    ("in_progress", "scheduled", "'completed'"),
]


@pytest.mark.parametrize(("start", "target", "allowed"), ILLEGAL)
async def test_illegal_transitions_are_409_naming_the_next_state(
    client: httpx.AsyncClient, make_tenant: MakeTenant, start: str, target: str, allowed: str
) -> None:
    tenant, building_id = await _tenant_with_building(client, make_tenant)
    created = await new_session(client, tenant.technician, building_id)
    url = f"/v1/tests/sessions/{created['id']}"
    headers = tenant.technician.headers
    before = await _advance(client, url, headers, start)
    response = await client.patch(
        url, json={"status": target, "session_name": "Also renamed"}, headers=headers
    )
    error = assert_error(response, 409)
    assert f"from '{start}' to '{target}'" in error["detail"]
    assert error["detail"].endswith(f"the allowed next status is {allowed}")
    assert (await client.get(url, headers=headers)).json() == before


async def test_same_status_is_a_no_op(client: httpx.AsyncClient, make_tenant: MakeTenant) -> None:
    tenant, building_id = await _tenant_with_building(client, make_tenant)
    created = await new_session(client, tenant.technician, building_id)
    url = f"/v1/tests/sessions/{created['id']}"
    await client.patch(url, json={"status": "scheduled"}, headers=tenant.technician.headers)
    again = await client.patch(url, json={"status": "scheduled"}, headers=tenant.technician.headers)
    assert again.status_code == 200
    assert again.json()["status"] == "scheduled"


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"status": "completed"},
        {"status": "in_progress"},
        {"session_name": "Rewritten history"},
        {"scheduled_for": None},
        {"frequency": "yearly"},
        "building",
    ],
)
async def test_a_completed_session_is_locked(
    client: httpx.AsyncClient, make_tenant: MakeTenant, change: dict[str, Any] | str
) -> None:
    tenant, building_id = await _tenant_with_building(client, make_tenant)
    created = await new_session(client, tenant.technician, building_id, scheduled_for="2026-12-01")
    url = f"/v1/tests/sessions/{created['id']}"
    await _advance(client, url, tenant.technician.headers, "completed")
    if change == "building":
        change = {"building_id": (await new_building(client, tenant.admin))["id"]}
    before = (await client.get(url, headers=tenant.admin.headers)).json()
    response = await client.patch(url, json=change, headers=tenant.admin.headers)
    error = assert_error(response, 409)
    assert "completed and locked" in error["detail"]
    assert (await client.get(url, headers=tenant.admin.headers)).json() == before


async def test_patch_fields(client: httpx.AsyncClient, make_tenant: MakeTenant) -> None:
    tenant, building_id = await _tenant_with_building(client, make_tenant)
    other_building = (await new_building(client, tenant.admin))["id"]
    created = await new_session(
        client, tenant.technician, building_id, frequency="monthly", scheduled_for="2026-12-01"
    )
    url = f"/v1/tests/sessions/{created['id']}"
    response = await client.patch(
        url,
        json={
            "session_name": "Moved visit",
            "scheduled_for": "2026-12-08",
            "frequency": "6-monthly",
            "building_id": other_building,
        },
        headers=tenant.technician.headers,
    )
    assert response.status_code == 200
    patched = response.json()
    assert (
        patched["session_name"],
        patched["scheduled_for"],
        patched["frequency"],
        patched["building_id"],
        patched["status"],
        patched["created_by"],
        patched["created_at"],
    ) == (
        "Moved visit",
        "2026-12-08",
        "6-monthly",
        other_building,
        "draft",
        created["created_by"],
        created["created_at"],
    )
    cleared = await client.patch(
        url, json={"scheduled_for": None, "frequency": None}, headers=tenant.admin.headers
    )
    assert (cleared.json()["scheduled_for"], cleared.json()["frequency"]) == (None, None)


async def test_bad_patches_change_nothing(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant, building_id = await _tenant_with_building(client, make_tenant)
    stranger, foreign_building = await _tenant_with_building(client, make_tenant)
    created = await new_session(client, tenant.technician, building_id)
    url = f"/v1/tests/sessions/{created['id']}"
    headers = tenant.technician.headers
    for body, pointer in [
        ({"status": "cancelled"}, "/status"),
        ({"status": None}, "/status"),
        ({"session_name": None}, "/session_name"),
        ({"building_id": None}, "/building_id"),
        ({"frequency": "hourly"}, "/frequency"),
        ({"created_by": str(tenant.admin.id)}, "/created_by"),
    ]:
        error = assert_error(await client.patch(url, json=body, headers=headers), 422)
        assert [e["pointer"] for e in error["errors"]] == [pointer], body
    moved = await client.patch(url, json={"building_id": foreign_building}, headers=headers)
    assert_error(moved, 404)
    assert (await client.get(url, headers=headers)).json() == created
    # Another organisation cannot touch it.
    assert_error(
        await client.patch(url, json={"session_name": "x"}, headers=stranger.admin.headers), 404
    )
    assert_error(await client.get(url, headers=stranger.admin.headers), 404)
    missing = f"/v1/tests/sessions/{uuid.uuid4()}"
    assert_error(await client.patch(missing, json={}, headers=headers), 404)
    assert_error(await client.get("/v1/tests/sessions/xyz", headers=headers), 422)


async def test_list_filters(client: httpx.AsyncClient, make_tenant: MakeTenant) -> None:
    tenant, building_a = await _tenant_with_building(client, make_tenant)
    building_b = (await new_building(client, tenant.admin))["id"]
    writer = tenant.technician

    async def make(building: str, status: str, scheduled_for: str | None) -> str:
        created = await new_session(client, writer, building, scheduled_for=scheduled_for)
        await _advance(client, f"/v1/tests/sessions/{created['id']}", writer.headers, status)
        return str(created["id"])

    s1 = await make(building_a, "draft", None)
    s2 = await make(building_a, "scheduled", "2026-01-10")
    s3 = await make(building_b, "in_progress", "2026-02-01")
    s4 = await make(building_b, "completed", "2026-02-28")
    s5 = await make(building_a, "scheduled", "2026-03-01")

    async def ids(*params: tuple[str, str]) -> list[str]:
        listed = await walk(client, "/v1/tests/sessions", tenant.viewer, limit=2, params=params)
        return [x["id"] for x in listed]

    assert await ids() == [s5, s4, s3, s2, s1]
    assert await ids(("status", "scheduled")) == [s5, s2]
    assert await ids(("status", "draft"), ("status", "completed")) == [s4, s1]
    assert await ids(("status", "completed"), ("status", "draft"), ("status", "draft")) == [s4, s1]
    assert await ids(("building_id", building_b)) == [s4, s3]
    assert await ids(("building_id", str(uuid.uuid4()))) == []
    assert await ids(("date_from", "2026-02-01")) == [s5, s4, s3]
    assert await ids(("date_to", "2026-02-01")) == [s3, s2]
    assert await ids(("date_from", "2026-02-01"), ("date_to", "2026-02-28")) == [s4, s3]
    assert await ids(("date_from", "2026-02-28"), ("date_to", "2026-02-28")) == [s4]
    assert await ids(
        ("status", "scheduled"), ("building_id", building_a), ("date_from", "2026-02-01")
    ) == [s5]


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"status": "cancelled"}, "status"),
        ({"building_id": "building-7"}, "building_id"),
        ({"date_from": "2026-13-01"}, "date_from"),
        ({"date_to": "yesterday"}, "date_to"),
        ({"date_from": "2026-03-02", "date_to": "2026-03-01"}, "date_from"),
    ],
)
async def test_list_filter_validation(
    client: httpx.AsyncClient, make_tenant: MakeTenant, params: dict[str, str], parameter: str
) -> None:
    tenant = await make_tenant()
    response = await client.get("/v1/tests/sessions", params=params, headers=tenant.viewer.headers)
    error = assert_error(response, 422)
    assert [e["parameter"] for e in error["errors"]] == [parameter]


async def test_tenant_isolation_in_lists(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    a, building_a = await _tenant_with_building(client, make_tenant)
    b, building_b = await _tenant_with_building(client, make_tenant)
    mine = await new_session(client, a.technician, building_a)
    await new_session(client, b.technician, building_b)
    listed = await walk(client, "/v1/tests/sessions", a.viewer, limit=500)
    assert [x["id"] for x in listed] == [mine["id"]]
    # Filtering by the other organisation's building shows nothing either.
    filtered = await walk(
        client, "/v1/tests/sessions", a.viewer, limit=50, params=[("building_id", building_b)]
    )
    assert filtered == []


async def test_the_users_test_token_list(client: httpx.AsyncClient) -> None:
    """The sign-off test: the seeded technician behind ``test-token`` lists with limit=500."""
    response = await client.get(
        "/v1/tests/sessions?limit=500", headers={"Authorization": "Bearer test-token"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["next_cursor"] is None
    assert len(body["data"]) <= 500
