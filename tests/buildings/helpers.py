"""Helpers shared by the buildings, sessions and pagination tests: create through the API,
read rows back through the ORM, and check FIRE error documents."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from tests.conftest import Tenant, TestUser

MakeTenant = Callable[..., Awaitable[Tenant]]
"""The type of the ``make_tenant`` fixture."""

RFC3339_UTC = "%Y-%m-%dT%H:%M:%S.%fZ"


def assert_error(response: httpx.Response, status: int) -> dict[str, Any]:
    """The response is the FIRE problem document for ``status``; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["error_code"] == f"FIRE-{status}"
    assert body["transaction_id"] == response.headers["x-transaction-id"]
    return body


def parse_timestamp(text: str) -> datetime:
    """Strict: RFC 3339 UTC with microseconds and Z, as the API guide says."""
    return datetime.strptime(text, RFC3339_UTC).replace(tzinfo=UTC)


async def new_building(client: httpx.AsyncClient, user: TestUser, **fields: Any) -> dict[str, Any]:
    body = {
        "name": f"Building {uuid.uuid4().hex[:6]}",
        "address": "1 Test Street, Sydney NSW 2000",
        "building_type": "office",
        **fields,
    }
    response = await client.post("/v1/buildings", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def new_asset(
    client: httpx.AsyncClient, user: TestUser, building_id: str, **fields: Any
) -> dict[str, Any]:
    body = {"asset_type": "fire_extinguisher", "location": "Lobby", **fields}
    response = await client.post(
        f"/v1/buildings/{building_id}/assets", json=body, headers=user.headers
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def new_session(
    client: httpx.AsyncClient, user: TestUser, building_id: str, **fields: Any
) -> dict[str, Any]:
    body = {"building_id": building_id, "session_name": "Monthly service", **fields}
    response = await client.post("/v1/tests/sessions", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def count_rows(app: FastAPI, model: Any, organisation_id: uuid.UUID) -> int:
    async with app.state.database.sessionmaker() as session:
        value = await session.scalar(
            select(func.count()).select_from(model).where(model.organisation_id == organisation_id)
        )
    return int(value or 0)


async def load(app: FastAPI, model: Any, object_id: str | uuid.UUID) -> Any:
    async with app.state.database.sessionmaker() as session:
        return await session.get(model, uuid.UUID(str(object_id)))


async def walk(
    client: httpx.AsyncClient,
    url: str,
    user: TestUser,
    *,
    limit: int,
    params: Sequence[tuple[str, str]] = (),
) -> list[dict[str, Any]]:
    """Every page of a list, in order; checks page sizes and the final null cursor."""
    pages: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query: list[tuple[str, str | int | float | bool | None]] = [*params, ("limit", limit)]
        if cursor:
            query.append(("cursor", cursor))
        response = await client.get(url, params=query, headers=user.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(page["data"]) == limit
        assert len(pages) < 10_000
    return [item for page in pages for item in page["data"]]
