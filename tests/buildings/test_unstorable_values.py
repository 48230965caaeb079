"""Values no database can store (U+0000, lone surrogates, NaN, Infinity) are a 422 that
changes nothing, on both databases, in every free-form JSON field and text field."""

from __future__ import annotations

import httpx
import pytest

from tests.buildings.helpers import MakeTenant, assert_error, new_asset, new_building

UNSTORABLE_BODIES = [
    (b'{"metadata": {"k": "\\ud800"}}', "/metadata"),
    (b'{"metadata": {"k": {"deeper": [1, NaN]}}}', "/metadata"),
    (b'{"metadata": {"k": 1e400}}', "/metadata"),
    (b'{"name": "Tower \\u0000 A"}', "/name"),
    (b'{"address": "1 George St\\u0000"}', "/address"),
]


@pytest.mark.parametrize(("raw", "pointer"), UNSTORABLE_BODIES)
async def test_building_patch_with_unstorable_value_changes_nothing(
    client: httpx.AsyncClient, make_tenant: MakeTenant, raw: bytes, pointer: str
) -> None:
    tenant = await make_tenant()
    building = await new_building(client, tenant.admin, metadata={"floors": 3})

    response = await client.patch(
        f"/v1/buildings/{building['id']}",
        content=raw,
        headers={**tenant.admin.headers, "content-type": "application/json"},
    )

    body = assert_error(response, 422)
    assert [e["pointer"] for e in body["errors"]] == [pointer]
    again = await client.get(f"/v1/buildings/{building['id']}", headers=tenant.viewer.headers)
    assert again.status_code == 200
    assert again.json() == building
    listed = await client.get("/v1/buildings", headers=tenant.viewer.headers)
    assert listed.status_code == 200
    assert listed.json()["data"] == [building]


async def test_asset_attributes_with_lone_surrogate_is_422(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    building = await new_building(client, tenant.admin)
    asset = await new_asset(client, tenant.technician, building["id"], attributes={"kg": 4.5})

    response = await client.patch(
        f"/v1/assets/{asset['id']}",
        content=b'{"attributes": {"note": "\\udfff"}}',
        headers={**tenant.technician.headers, "content-type": "application/json"},
    )

    body = assert_error(response, 422)
    assert [e["pointer"] for e in body["errors"]] == ["/attributes"]
    again = await client.get(f"/v1/assets/{asset['id']}", headers=tenant.viewer.headers)
    assert again.json() == asset


async def test_session_name_with_nul_is_422(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    building = await new_building(client, tenant.admin)
    response = await client.post(
        "/v1/tests/sessions",
        json={"building_id": building["id"], "session_name": "March\u0000"},
        headers=tenant.technician.headers,
    )
    body = assert_error(response, 422)
    assert [e["pointer"] for e in body["errors"]] == ["/session_name"]
    listed = await client.get("/v1/tests/sessions", headers=tenant.viewer.headers)
    assert listed.json()["data"] == []
