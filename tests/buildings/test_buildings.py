"""Buildings: CRUD, filters, roles, tenancy, and the delete rule."""

from __future__ import annotations

import uuid

import httpx
from fastapi import FastAPI

from src.app.buildings.models import Asset, Building
from tests.buildings.helpers import (
    MakeTenant,
    assert_error,
    count_rows,
    load,
    new_asset,
    new_building,
    new_session,
    parse_timestamp,
    walk,
)

BODY = {
    "name": "Harbour Tower",
    "address": "1 Harbour St, Sydney NSW 2000",
    "building_type": "office",
    "metadata": {"levels": 32, "ncc_class": "5"},
}


async def test_create_and_get_building(client: httpx.AsyncClient, make_tenant: MakeTenant) -> None:
    tenant = await make_tenant()
    response = await client.post("/v1/buildings", json=BODY, headers=tenant.admin.headers)
    assert response.status_code == 201
    created = response.json()
    assert set(created) == {
        "id",
        "name",
        "address",
        "building_type",
        "metadata",
        "created_at",
        "updated_at",
    }
    assert {k: created[k] for k in BODY} == BODY
    assert response.headers["location"] == f"/v1/buildings/{created['id']}"
    parse_timestamp(created["created_at"])
    parse_timestamp(created["updated_at"])

    got = await client.get(f"/v1/buildings/{created['id']}", headers=tenant.viewer.headers)
    assert got.status_code == 200
    assert got.json() == created


async def test_metadata_defaults_to_empty_object(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    created = await new_building(client, tenant.admin)
    assert created["metadata"] == {}


async def test_only_admins_write_buildings(
    app: FastAPI, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    building = await new_building(client, tenant.admin)
    for user in (tenant.technician, tenant.viewer):
        assert_error(await client.post("/v1/buildings", json=BODY, headers=user.headers), 403)
        patched = await client.patch(
            f"/v1/buildings/{building['id']}", json={"name": "X"}, headers=user.headers
        )
        assert_error(patched, 403)
        assert_error(
            await client.delete(f"/v1/buildings/{building['id']}", headers=user.headers), 403
        )
    assert await count_rows(app, Building, tenant.organisation_id) == 1
    unchanged = await client.get(f"/v1/buildings/{building['id']}", headers=tenant.viewer.headers)
    assert unchanged.json() == building


async def test_authentication_is_required(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/v1/buildings"), 401)
    assert_error(await client.post("/v1/buildings", json=BODY), 401)


async def test_invalid_bodies_are_422_and_create_nothing(
    app: FastAPI, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    bad_bodies = [
        ({k: v for k, v in BODY.items() if k != "name"}, "/name"),
        ({**BODY, "name": "   "}, "/name"),
        ({**BODY, "name": "n" * 201}, "/name"),
        ({**BODY, "address": ""}, "/address"),
        ({**BODY, "building_type": "t" * 65}, "/building_type"),
        ({**BODY, "metadata": ["not", "an", "object"]}, "/metadata"),
        ({**BODY, "metadata": {"blob": "x" * (64 * 1024)}}, "/metadata"),
        ({**BODY, "colour": "red"}, "/colour"),
    ]
    for body, pointer in bad_bodies:
        response = await client.post("/v1/buildings", json=body, headers=tenant.admin.headers)
        error = assert_error(response, 422)
        assert [e["pointer"] for e in error["errors"]] == [pointer], body
    assert await count_rows(app, Building, tenant.organisation_id) == 0


async def test_list_filters_building_type_and_name_search(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    tower = await new_building(client, tenant.admin, name="Harbour Tower", building_type="office")
    hospital = await new_building(
        client, tenant.admin, name="St Vincent's Hospital", building_type="hospital"
    )
    depot = await new_building(
        client, tenant.admin, name="100% Depot_North", building_type="warehouse"
    )
    url, viewer = "/v1/buildings", tenant.viewer

    async def names(**params: str) -> list[str]:
        response = await client.get(url, params=params, headers=viewer.headers)
        assert response.status_code == 200
        return [b["name"] for b in response.json()["data"]]

    assert await names() == [depot["name"], hospital["name"], tower["name"]]
    assert await names(building_type="hospital") == [hospital["name"]]
    assert await names(building_type="Hospital") == []  # exact match
    assert await names(q="HARBOUR") == [tower["name"]]
    assert await names(q="vincent") == [hospital["name"]]
    assert await names(q="o") == [depot["name"], hospital["name"], tower["name"]]
    # LIKE wildcards in q are literal characters.
    assert await names(q="%") == [depot["name"]]
    assert await names(q="h_") == []
    assert await names(q="T_N") == [depot["name"]]
    assert await names(q="   ") == [depot["name"], hospital["name"], tower["name"]]
    assert await names(q="tower", building_type="hospital") == []
    assert await names(q="tower", building_type="office") == [tower["name"]]


async def test_list_filter_validation(client: httpx.AsyncClient, make_tenant: MakeTenant) -> None:
    tenant = await make_tenant()
    response = await client.get(
        "/v1/buildings", params={"q": "x" * 201}, headers=tenant.viewer.headers
    )
    assert assert_error(response, 422)["errors"][0]["parameter"] == "q"


async def test_tenant_isolation(client: httpx.AsyncClient, make_tenant: MakeTenant) -> None:
    a, b = await make_tenant(), await make_tenant()
    mine = await new_building(client, a.admin)
    theirs = await new_building(client, b.admin)
    listed = await walk(client, "/v1/buildings", a.viewer, limit=50)
    assert [x["id"] for x in listed] == [mine["id"]]
    url = f"/v1/buildings/{theirs['id']}"
    error = assert_error(await client.get(url, headers=a.admin.headers), 404)
    assert error["retryable"] is True
    assert_error(await client.patch(url, json={"name": "Mine now"}, headers=a.admin.headers), 404)
    assert_error(await client.delete(url, headers=a.admin.headers), 404)
    still = await client.get(url, headers=b.viewer.headers)
    assert still.json() == theirs


async def test_unknown_and_malformed_ids(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    missing = uuid.uuid4()
    error = assert_error(
        await client.get(f"/v1/buildings/{missing}", headers=tenant.viewer.headers), 404
    )
    assert str(missing) in error["detail"]
    error = assert_error(
        await client.get("/v1/buildings/not-a-uuid", headers=tenant.viewer.headers), 422
    )
    assert error["errors"][0]["parameter"] == "building_id"


async def test_patch_changes_only_the_fields_sent(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    building = await new_building(client, tenant.admin, metadata={"a": 1, "b": 2})
    response = await client.patch(
        f"/v1/buildings/{building['id']}",
        json={"name": "Renamed", "metadata": {"c": 3}},
        headers=tenant.admin.headers,
    )
    assert response.status_code == 200
    patched = response.json()
    assert patched["name"] == "Renamed"
    assert patched["metadata"] == {"c": 3}  # replaced whole
    assert patched["address"] == building["address"]
    assert patched["building_type"] == building["building_type"]
    assert patched["created_at"] == building["created_at"]
    assert parse_timestamp(patched["updated_at"]) > parse_timestamp(building["updated_at"])
    got = await client.get(f"/v1/buildings/{building['id']}", headers=tenant.viewer.headers)
    assert got.json() == patched


async def test_bad_patches_change_nothing(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    building = await new_building(client, tenant.admin)
    url = f"/v1/buildings/{building['id']}"
    for body, pointer in [
        ({"name": None}, "/name"),
        ({"name": ""}, "/name"),
        ({"metadata": None}, "/metadata"),
        ({"metadata": "x"}, "/metadata"),
        ({"organisation_id": str(uuid.uuid4())}, "/organisation_id"),
    ]:
        error = assert_error(await client.patch(url, json=body, headers=tenant.admin.headers), 422)
        assert [e["pointer"] for e in error["errors"]] == [pointer]
    assert (await client.get(url, headers=tenant.admin.headers)).json() == building


async def test_delete_building_removes_it_and_its_register(
    app: FastAPI, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    building = await new_building(client, tenant.admin)
    asset = await new_asset(client, tenant.technician, building["id"], barcode="DEL-1")
    other = await new_building(client, tenant.admin)
    other_asset = await new_asset(client, tenant.technician, other["id"], barcode="DEL-2")

    response = await client.delete(f"/v1/buildings/{building['id']}", headers=tenant.admin.headers)
    assert response.status_code == 204
    assert response.content == b""
    assert_error(
        await client.get(f"/v1/buildings/{building['id']}", headers=tenant.admin.headers), 404
    )
    assert_error(await client.get(f"/v1/assets/{asset['id']}", headers=tenant.admin.headers), 404)
    assert await load(app, Asset, other_asset["id"]) is not None
    assert_error(
        await client.delete(f"/v1/buildings/{building['id']}", headers=tenant.admin.headers), 404
    )


async def test_delete_building_with_sessions_is_409(
    app: FastAPI, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    building = await new_building(client, tenant.admin)
    asset = await new_asset(client, tenant.technician, building["id"])
    await new_session(client, tenant.technician, building["id"])
    url = f"/v1/buildings/{building['id']}"
    error = assert_error(await client.delete(url, headers=tenant.admin.headers), 409)
    assert "test sessions" in error["detail"]
    assert error["retryable"] is False
    assert (await client.get(url, headers=tenant.admin.headers)).json() == building
    assert await load(app, Asset, asset["id"]) is not None
