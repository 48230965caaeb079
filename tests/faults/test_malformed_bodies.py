"""A body that cannot be parsed at all (not UTF-8, not JSON, nested too deep) is 400 with
a FIRE error saying which, on every operation that takes a body, and changes nothing; a
body that parses but breaks the schema stays 422 with pointers."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from src.app.core.database import Base
from src.app.core.middleware import MAX_JSON_DEPTH, json_too_deep
from tests.buildings.helpers import assert_error, new_asset, new_building, new_session
from tests.conftest import Tenant

MALFORMED = {
    "not UTF-8": (
        b'{"name": "caf\xe9"}',
        "The request body is not UTF-8 (invalid byte at offset 13)",
    ),
    "not JSON": (
        b'{"name": ',
        "The request body is not valid JSON: Expecting value at character 9",
    ),
    "too deep": (
        b'{"v": ' + b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH + b"}",
        f"The request body is nested deeper than {MAX_JSON_DEPTH} levels",
    ),
}


def _body_operations(app: FastAPI) -> list[tuple[str, str]]:
    schema = app.openapi()
    return sorted(
        (method.upper(), path)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        # JSON bodies only: an upload (multipart) is streamed, never parsed as JSON.
        if "application/json" in operation.get("requestBody", {}).get("content", {})
    )


async def _snapshot(app: FastAPI) -> dict[str, tuple[int, Any]]:
    """Row count and latest update of every table: what "nothing changed" means here."""
    found: dict[str, tuple[int, Any]] = {}
    async with app.state.database.sessionmaker() as db:
        for table in Base.metadata.sorted_tables:
            latest = func.max(table.c.updated_at) if "updated_at" in table.c else func.count()
            row = (await db.execute(select(func.count(), latest).select_from(table))).one()
            found[table.name] = (row[0], row[1])
    return found


def _concrete(path: str, ids: dict[str, str]) -> str:
    # The body is refused before routing, so any id fits a path the test did not seed.
    return re.sub(r"\{(\w+)\}", lambda match: ids.get(match.group(1), str(uuid.uuid4())), path)


async def test_every_body_operation_answers_400_for_each_malformed_body(
    app: FastAPI, client: httpx.AsyncClient, make_tenant: Any
) -> None:
    tenant: Tenant = await make_tenant()
    admin = tenant.admin
    building = await new_building(client, admin)
    asset = await new_asset(client, admin, building["id"])
    session = await new_session(client, tenant.technician, building["id"])
    ids = {
        "building_id": building["id"],
        "asset_id": asset["id"],
        "session_id": session["id"],
        "user_id": str(tenant.viewer.id),
    }
    operations = _body_operations(app)
    assert ("POST", "/v1/tests/sessions/{session_id}/results") in operations
    before = await _snapshot(app)
    for method, path in operations:
        for kind, (raw, detail) in MALFORMED.items():
            response = await client.request(
                method,
                _concrete(path, ids),
                content=raw,
                headers={
                    **admin.headers,
                    "Content-Type": "application/json",
                    "Idempotency-Key": f"malformed-{uuid.uuid4()}",
                },
            )
            body = assert_error(response, 400)
            assert body["detail"] == detail, (method, path, kind)
            assert body["retryable"] is False
            assert "errors" not in body
    assert await _snapshot(app) == before


async def test_json_that_breaks_the_schema_stays_422_with_pointers(
    client: httpx.AsyncClient, make_tenant: Any
) -> None:
    tenant: Tenant = await make_tenant()
    response = await client.post(
        "/v1/buildings", json={"name": 5, "addres": "x"}, headers=tenant.admin.headers
    )
    body = assert_error(response, 422)
    assert sorted(e["pointer"] for e in body["errors"]) == [
        "/addres",
        "/address",
        "/building_type",
        "/name",
    ]


async def test_depth_at_the_limit_is_parsed(client: httpx.AsyncClient, make_tenant: Any) -> None:
    """64 levels in all (the body object plus 63 arrays) is still JSON we read: the
    schema, not the parser, refuses it (422)."""
    tenant: Tenant = await make_tenant()
    depth = MAX_JSON_DEPTH - 1
    raw = b'{"name": ' + b"[" * depth + b"]" * depth + b"}"
    response = await client.post(
        "/v1/buildings",
        content=raw,
        headers={**tenant.admin.headers, "Content-Type": "application/json"},
    )
    assert_error(response, 422)


@pytest.mark.parametrize(
    ("raw", "deep"),
    [
        (b"[]", False),
        (b"[" * 64 + b"]" * 64, False),
        (b"[" * 65 + b"]" * 65, True),
        (b"{" * 65, True),  # unbalanced, still refused before the parser recurses
        (b'{"a": "' + b"[" * 200 + b'"}', False),  # brackets inside a string do not count
        (b'{"a": "\\"' + b"[" * 200 + b'"}', False),  # nor after an escaped quote
        (b"[" * 40 + b"{}" * 1000 + b"]" * 40, False),
        (b"[" * 65 + b"}" * 65, True),  # mismatched kinds still nest
    ],
)
def test_depth_check(raw: bytes, deep: bool) -> None:
    assert json_too_deep(raw) is deep


@pytest.mark.parametrize("value", ["0.0", "1700000000", "2026-1-5", "20260105"])
async def test_dates_are_yyyy_mm_dd_and_nothing_else(
    app: FastAPI, client: httpx.AsyncClient, make_tenant: Any, value: str
) -> None:
    """The schema says ``format: date``; a number is not read as a Unix timestamp."""
    tenant: Tenant = await make_tenant()
    listed = await client.get(
        "/v1/tests/sessions", params={"date_to": value}, headers=tenant.admin.headers
    )
    body = assert_error(listed, 422)
    assert [e.get("parameter") for e in body["errors"]] == ["date_to"]
    building = await new_building(client, tenant.admin)
    before = await _snapshot(app)
    for raw in (value, float(value) if value.replace(".", "").isdigit() else value):
        created = await client.post(
            f"/v1/buildings/{building['id']}/assets",
            json={"asset_type": "fire_extinguisher", "location": "Lobby", "installed_on": raw},
            headers=tenant.admin.headers,
        )
        assert [e["pointer"] for e in assert_error(created, 422)["errors"]] == ["/installed_on"]
    assert await _snapshot(app) == before
    ok = await client.get(
        "/v1/tests/sessions", params={"date_to": "2026-01-05"}, headers=tenant.admin.headers
    )
    assert ok.status_code == 200
