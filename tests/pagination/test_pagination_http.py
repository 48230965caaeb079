"""Pagination through HTTP: limits, and cursors that are tampered with, truncated, replayed with
other filters, on another list, or by another organisation."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from src.app.sessions.models import TestSession
from tests.buildings.helpers import MakeTenant, assert_error
from tests.conftest import Tenant
from tests.pagination.seeding import (
    ASSETS,
    BUILDINGS,
    KINDS,
    SESSIONS,
    ListKind,
    insert_rows,
    newest_first,
    prepare,
)


async def _seeded(
    app: FastAPI, make_tenant: MakeTenant, kind: ListKind, count: int
) -> tuple[Tenant, uuid.UUID, list[str]]:
    tenant = await make_tenant()
    parent = await prepare(app, tenant, kind)
    offsets = list(range(count))
    ids = await insert_rows(app, tenant, kind, parent, offsets)
    return tenant, parent, newest_first(list(zip(offsets, ids, strict=True)))


async def _first_cursor(client: httpx.AsyncClient, url: str, tenant: Tenant, **params: Any) -> str:
    response = await client.get(url, params={"limit": 2, **params}, headers=tenant.viewer.headers)
    assert response.status_code == 200
    cursor: str = response.json()["next_cursor"]
    assert cursor is not None
    return cursor


def _assert_cursor_refused(response: httpx.Response) -> dict[str, Any]:
    error = assert_error(response, 400)
    assert error["retryable"] is False
    assert [e["parameter"] for e in error["errors"]] == ["cursor"]
    return error


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
@pytest.mark.parametrize("limit", ["0", "501", "-1", "ten", "1.5"])
async def test_limit_outside_1_to_500_is_422(
    app: FastAPI, client: httpx.AsyncClient, make_tenant: MakeTenant, kind: ListKind, limit: str
) -> None:
    tenant = await make_tenant()
    parent = await prepare(app, tenant, kind)
    response = await client.get(
        kind.url(parent), params={"limit": limit}, headers=tenant.viewer.headers
    )
    error = assert_error(response, 422)
    assert [e["parameter"] for e in error["errors"]] == ["limit"]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
async def test_limit_500_and_1_are_accepted(
    app: FastAPI, client: httpx.AsyncClient, make_tenant: MakeTenant, kind: ListKind
) -> None:
    tenant, parent, expected = await _seeded(app, make_tenant, kind, 3)
    url, headers = kind.url(parent), tenant.viewer.headers
    full = await client.get(url, params={"limit": 500}, headers=headers)
    assert full.status_code == 200
    assert ([r["id"] for r in full.json()["data"]], full.json()["next_cursor"]) == (expected, None)
    one = await client.get(url, params={"limit": 1}, headers=headers)
    assert [r["id"] for r in one.json()["data"]] == expected[:1]
    assert one.json()["next_cursor"] is not None


async def test_default_limit_is_50(
    app: FastAPI, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant, _, expected = await _seeded(app, make_tenant, SESSIONS, 51)
    first = (await client.get("/v1/tests/sessions", headers=tenant.viewer.headers)).json()
    assert [r["id"] for r in first["data"]] == expected[:50]
    second = (
        await client.get(
            "/v1/tests/sessions",
            params={"cursor": first["next_cursor"]},
            headers=tenant.viewer.headers,
        )
    ).json()
    assert ([r["id"] for r in second["data"]], second["next_cursor"]) == (expected[50:], None)


async def test_page_size_may_change_between_pages(
    app: FastAPI, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant, _, expected = await _seeded(app, make_tenant, BUILDINGS, 7)
    cursor = await _first_cursor(client, "/v1/buildings", tenant)
    rest = await client.get(
        "/v1/buildings", params={"limit": 3, "cursor": cursor}, headers=tenant.viewer.headers
    )
    assert [r["id"] for r in rest.json()["data"]] == expected[2:5]


def _tampered(cursor: str) -> list[str]:
    payload, signature = cursor.split(".")
    flip = {"A": "B", "B": "A"}
    return [
        payload[:-1] + ("A" if payload[-1] != "A" else "B") + "." + signature,  # payload
        payload + "." + signature[:-1] + ("A" if signature[-1] != "A" else "B"),  # signature
        cursor[: len(cursor) // 2],  # truncated
        cursor[:-1],
        payload,  # signature dropped
        "".join(flip.get(c, c) for c in cursor),
        cursor + "A",
        "not-a-cursor",
        "%%%",
        "x" * 5000,
        "ünïcödé",
    ]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
async def test_tampered_or_truncated_cursors_are_400(
    app: FastAPI, client: httpx.AsyncClient, make_tenant: MakeTenant, kind: ListKind
) -> None:
    tenant, parent, _ = await _seeded(app, make_tenant, kind, 5)
    url = kind.url(parent)
    cursor = await _first_cursor(client, url, tenant)
    for forged in _tampered(cursor):
        assert forged != cursor
        response = await client.get(
            url, params={"limit": 2, "cursor": forged}, headers=tenant.viewer.headers
        )
        _assert_cursor_refused(response)
    # The genuine one still works, and an empty cursor means the first page.
    genuine = await client.get(
        url, params={"limit": 2, "cursor": cursor}, headers=tenant.viewer.headers
    )
    assert genuine.status_code == 200
    empty = await client.get(url, params={"limit": 2, "cursor": ""}, headers=tenant.viewer.headers)
    assert empty.status_code == 200
    assert empty.json()["next_cursor"] == cursor


@pytest.mark.parametrize(
    ("first_params", "replay_params"),
    [
        ({}, {"status": "draft"}),
        ({"status": "draft"}, {}),
        ({"status": "draft"}, {"status": "scheduled"}),
        ({"status": ["draft", "scheduled"]}, {"status": "draft"}),
        ({}, {"building_id": "PARENT"}),
        ({"building_id": "PARENT"}, {"building_id": str(uuid.uuid4())}),
        ({}, {"date_from": "2026-01-01"}),
        ({"date_from": "2026-01-01"}, {"date_from": "2026-01-02"}),
        ({"date_to": "2026-12-31"}, {"date_from": "2026-12-31"}),
    ],
)
async def test_session_cursor_with_other_filters_is_400(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_tenant: MakeTenant,
    first_params: dict[str, Any],
    replay_params: dict[str, Any],
) -> None:
    tenant, parent, _ = await _seeded(app, make_tenant, SESSIONS, 0)
    # Rows that match every filter used here, so each list has a second page.
    async with app.state.database.sessionmaker() as session:
        session.add_all(
            TestSession(
                organisation_id=tenant.organisation_id,
                building_id=parent,
                session_name="S",
                status="draft",
                scheduled_for=date(2026, 6, 1),
            )
            for _ in range(3)
        )
        await session.commit()

    def resolve(params: dict[str, Any]) -> dict[str, Any]:
        return {k: (str(parent) if v == "PARENT" else v) for k, v in params.items()}

    cursor = await _first_cursor(client, "/v1/tests/sessions", tenant, **resolve(first_params))
    response = await client.get(
        "/v1/tests/sessions",
        params={"limit": 2, "cursor": cursor, **resolve(replay_params)},
        headers=tenant.viewer.headers,
    )
    assert "another list" in _assert_cursor_refused(response)["detail"]


async def test_repeated_status_filter_in_another_order_is_the_same_list(
    app: FastAPI, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant, _, expected = await _seeded(app, make_tenant, SESSIONS, 5)
    url, headers = "/v1/tests/sessions", tenant.viewer.headers
    cursor = await _first_cursor(client, url, tenant, status=["draft", "completed"])
    response = await client.get(
        url,
        params={"limit": 10, "cursor": cursor, "status": ["completed", "draft", "draft"]},
        headers=headers,
    )
    assert response.status_code == 200
    assert [r["id"] for r in response.json()["data"]] == expected[2:]


@pytest.mark.parametrize(
    ("first_params", "replay_params"),
    [
        ({}, {"q": "b"}),
        ({"q": "b"}, {"q": "bb"}),
        ({}, {"building_type": "office"}),
        ({"building_type": "office"}, {"building_type": "hospital"}),
    ],
)
async def test_building_cursor_with_other_filters_is_400(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_tenant: MakeTenant,
    first_params: dict[str, str],
    replay_params: dict[str, str],
) -> None:
    tenant, _, _ = await _seeded(app, make_tenant, BUILDINGS, 4)
    cursor = await _first_cursor(client, "/v1/buildings", tenant, **first_params)
    response = await client.get(
        "/v1/buildings",
        params={"limit": 2, "cursor": cursor, **replay_params},
        headers=tenant.viewer.headers,
    )
    _assert_cursor_refused(response)


async def test_asset_cursor_of_another_building_is_400(
    app: FastAPI, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant, parent, _ = await _seeded(app, make_tenant, ASSETS, 4)
    other = await prepare(app, tenant, ASSETS)
    await insert_rows(app, tenant, ASSETS, other, [1, 2, 3])
    cursor = await _first_cursor(client, ASSETS.url(parent), tenant)
    response = await client.get(
        ASSETS.url(other), params={"limit": 2, "cursor": cursor}, headers=tenant.viewer.headers
    )
    _assert_cursor_refused(response)


async def test_cursor_of_another_endpoint_is_400(
    app: FastAPI, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant, _, _ = await _seeded(app, make_tenant, BUILDINGS, 4)
    await _seeded(app, make_tenant, SESSIONS, 0)
    building_cursor = await _first_cursor(client, "/v1/buildings", tenant)
    response = await client.get(
        "/v1/tests/sessions",
        params={"limit": 2, "cursor": building_cursor},
        headers=tenant.viewer.headers,
    )
    _assert_cursor_refused(response)


@pytest.mark.parametrize("kind", (SESSIONS, BUILDINGS), ids=lambda k: k.name)
async def test_cursor_replayed_by_another_organisation_is_400(
    app: FastAPI, client: httpx.AsyncClient, make_tenant: MakeTenant, kind: ListKind
) -> None:
    tenant, parent, _ = await _seeded(app, make_tenant, kind, 4)
    stranger, stranger_parent, _ = await _seeded(app, make_tenant, kind, 4)
    cursor = await _first_cursor(client, kind.url(parent), tenant)
    response = await client.get(
        kind.url(stranger_parent),
        params={"limit": 2, "cursor": cursor},
        headers=stranger.viewer.headers,
    )
    _assert_cursor_refused(response)
    # An asset list is under a building, which the stranger cannot even see.
    assets_tenant, assets_parent, _ = await _seeded(app, make_tenant, ASSETS, 3)
    asset_cursor = await _first_cursor(client, ASSETS.url(assets_parent), assets_tenant)
    foreign = await client.get(
        ASSETS.url(assets_parent),
        params={"limit": 2, "cursor": asset_cursor},
        headers=stranger.viewer.headers,
    )
    assert_error(foreign, 404)


async def test_the_same_cursor_works_for_every_user_of_the_organisation(
    app: FastAPI, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant, _, expected = await _seeded(app, make_tenant, SESSIONS, 4)
    cursor = await _first_cursor(client, "/v1/tests/sessions", tenant)
    response = await client.get(
        "/v1/tests/sessions",
        params={"limit": 2, "cursor": cursor},
        headers=tenant.admin.headers,
    )
    assert [r["id"] for r in response.json()["data"]] == expected[2:]
    assert response.json()["next_cursor"] is None
