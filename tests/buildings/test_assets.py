"""The equipment register: assets of a building, barcodes unique per organisation."""

from __future__ import annotations

import uuid

import httpx
from fastapi import FastAPI

from src.app.buildings.models import Asset, AssetType
from tests.buildings.helpers import (
    MakeTenant,
    assert_error,
    count_rows,
    new_asset,
    new_building,
    parse_timestamp,
    walk,
)

BODY = {
    "asset_type": "fire_extinguisher",
    "location": "Level 2, lift lobby",
    "barcode": "EXT-0001",
    "installed_on": "2021-03-15",
    "attributes": {"agent": "ABE", "size_kg": 4.5},
}


async def test_create_and_get_asset(client: httpx.AsyncClient, make_tenant: MakeTenant) -> None:
    tenant = await make_tenant()
    building = await new_building(client, tenant.admin)
    response = await client.post(
        f"/v1/buildings/{building['id']}/assets", json=BODY, headers=tenant.technician.headers
    )
    assert response.status_code == 201
    asset = response.json()
    assert set(asset) == {
        "id",
        "building_id",
        "asset_type",
        "location",
        "barcode",
        "installed_on",
        "attributes",
        "created_at",
        "updated_at",
    }
    assert {k: asset[k] for k in BODY} == BODY
    assert asset["building_id"] == building["id"]
    assert response.headers["location"] == f"/v1/assets/{asset['id']}"
    parse_timestamp(asset["created_at"])
    got = await client.get(f"/v1/assets/{asset['id']}", headers=tenant.viewer.headers)
    assert got.status_code == 200
    assert got.json() == asset


async def test_optional_fields_default(client: httpx.AsyncClient, make_tenant: MakeTenant) -> None:
    tenant = await make_tenant()
    building = await new_building(client, tenant.admin)
    response = await client.post(
        f"/v1/buildings/{building['id']}/assets",
        json={"asset_type": "exit_sign"},
        headers=tenant.admin.headers,
    )
    assert response.status_code == 201
    asset = response.json()
    assert (asset["location"], asset["barcode"], asset["installed_on"], asset["attributes"]) == (
        "",
        None,
        None,
        {},
    )


async def test_every_documented_asset_type_is_accepted(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    building = await new_building(client, tenant.admin)
    for asset_type in AssetType:
        asset = await new_asset(client, tenant.technician, building["id"], asset_type=asset_type)
        assert asset["asset_type"] == asset_type.value


async def test_openapi_documents_the_asset_types(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    components = schema["components"]["schemas"]
    assert set(components["AssetType"]["enum"]) == {t.value for t in AssetType}
    assert "fire_hose_reel" in components["AssetCreate"]["properties"]["asset_type"]["description"]


async def test_bad_asset_bodies_are_422_and_create_nothing(
    app: FastAPI, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    building = await new_building(client, tenant.admin)
    url = f"/v1/buildings/{building['id']}/assets"
    for body, pointer in [
        ({**BODY, "asset_type": "flamethrower"}, "/asset_type"),
        ({k: v for k, v in BODY.items() if k != "asset_type"}, "/asset_type"),
        ({**BODY, "barcode": ""}, "/barcode"),
        ({**BODY, "barcode": "b" * 129}, "/barcode"),
        ({**BODY, "installed_on": "15/03/2021"}, "/installed_on"),
        ({**BODY, "attributes": [1, 2]}, "/attributes"),
        ({**BODY, "serial": "x"}, "/serial"),
    ]:
        error = assert_error(
            await client.post(url, json=body, headers=tenant.technician.headers), 422
        )
        assert [e["pointer"] for e in error["errors"]] == [pointer], body
    assert await count_rows(app, Asset, tenant.organisation_id) == 0


async def test_viewer_cannot_write_assets(
    app: FastAPI, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    building = await new_building(client, tenant.admin)
    asset = await new_asset(client, tenant.admin, building["id"], barcode="V-1")
    created = await client.post(
        f"/v1/buildings/{building['id']}/assets", json=BODY, headers=tenant.viewer.headers
    )
    assert_error(created, 403)
    patched = await client.patch(
        f"/v1/assets/{asset['id']}", json={"location": "Roof"}, headers=tenant.viewer.headers
    )
    assert_error(patched, 403)
    assert await count_rows(app, Asset, tenant.organisation_id) == 1
    got = await client.get(f"/v1/assets/{asset['id']}", headers=tenant.viewer.headers)
    assert got.json() == asset


async def test_barcode_is_unique_within_the_organisation(
    app: FastAPI, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    a, b = await make_tenant(), await make_tenant()
    first = await new_building(client, a.admin)
    second = await new_building(client, a.admin)
    await new_asset(client, a.technician, first["id"], barcode="TAG-7")
    # Same organisation, another building: still a duplicate.
    duplicate = await client.post(
        f"/v1/buildings/{second['id']}/assets",
        json={"asset_type": "fire_blanket", "barcode": "TAG-7"},
        headers=a.technician.headers,
    )
    error = assert_error(duplicate, 409)
    assert "TAG-7" in error["detail"]
    assert await count_rows(app, Asset, a.organisation_id) == 1
    # Another organisation may use the same tag.
    theirs = await new_building(client, b.admin)
    await new_asset(client, b.technician, theirs["id"], barcode="TAG-7")
    # Items without a barcode never collide.
    await new_asset(client, a.technician, first["id"], barcode=None)
    await new_asset(client, a.technician, first["id"], barcode=None)
    assert await count_rows(app, Asset, a.organisation_id) == 3


async def test_patch_asset(client: httpx.AsyncClient, make_tenant: MakeTenant) -> None:
    tenant = await make_tenant()
    building = await new_building(client, tenant.admin)
    other = await new_building(client, tenant.admin)
    asset = await new_asset(client, tenant.technician, building["id"], **BODY)
    url = f"/v1/assets/{asset['id']}"
    response = await client.patch(
        url,
        json={"location": "Plant room", "attributes": {"agent": "CO2"}, "barcode": "EXT-0001"},
        headers=tenant.technician.headers,
    )
    assert response.status_code == 200
    patched = response.json()
    assert (patched["location"], patched["attributes"], patched["barcode"]) == (
        "Plant room",
        {"agent": "CO2"},
        "EXT-0001",
    )
    assert patched["asset_type"] == asset["asset_type"]
    assert parse_timestamp(patched["updated_at"]) > parse_timestamp(asset["updated_at"])

    cleared = await client.patch(
        url, json={"barcode": None, "installed_on": None}, headers=tenant.technician.headers
    )
    assert (cleared.json()["barcode"], cleared.json()["installed_on"]) == (None, None)

    moved = await client.patch(
        url,
        json={"building_id": other["id"], "asset_type": "fire_hydrant"},
        headers=tenant.admin.headers,
    )
    assert moved.status_code == 200
    assert (moved.json()["building_id"], moved.json()["asset_type"]) == (
        other["id"],
        "fire_hydrant",
    )
    assert [
        x["id"]
        for x in await walk(client, f"/v1/buildings/{other['id']}/assets", tenant.viewer, limit=10)
    ] == [asset["id"]]
    assert (
        await walk(client, f"/v1/buildings/{building['id']}/assets", tenant.viewer, limit=10) == []
    )


async def test_bad_asset_patches_change_nothing(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant, stranger = await make_tenant(), await make_tenant()
    building = await new_building(client, tenant.admin)
    foreign = await new_building(client, stranger.admin)
    await new_asset(client, tenant.technician, building["id"], barcode="TAKEN")
    asset = await new_asset(client, tenant.technician, building["id"], barcode="MINE")
    url = f"/v1/assets/{asset['id']}"
    headers = tenant.technician.headers

    error = assert_error(await client.patch(url, json={"barcode": "TAKEN"}, headers=headers), 409)
    assert "TAKEN" in error["detail"]
    moved = await client.patch(url, json={"building_id": foreign["id"]}, headers=headers)
    assert foreign["id"] in assert_error(moved, 404)["detail"]
    missing = str(uuid.uuid4())
    assert_error(await client.patch(url, json={"building_id": missing}, headers=headers), 404)
    for body, pointer in [
        ({"asset_type": None}, "/asset_type"),
        ({"asset_type": "unicorn"}, "/asset_type"),
        ({"building_id": None}, "/building_id"),
        ({"attributes": None}, "/attributes"),
        ({"location": None}, "/location"),
        ({"barcode": ""}, "/barcode"),
    ]:
        error = assert_error(await client.patch(url, json=body, headers=headers), 422)
        assert [e["pointer"] for e in error["errors"]] == [pointer], body
    assert (await client.get(url, headers=headers)).json() == asset


async def test_asset_list_is_per_building_and_tenant_scoped(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    a, b = await make_tenant(), await make_tenant()
    first = await new_building(client, a.admin)
    second = await new_building(client, a.admin)
    theirs = await new_building(client, b.admin)
    mine = [await new_asset(client, a.technician, first["id"]) for _ in range(3)]
    await new_asset(client, a.technician, second["id"])
    foreign_asset = await new_asset(client, b.technician, theirs["id"])

    listed = await walk(client, f"/v1/buildings/{first['id']}/assets", a.viewer, limit=2)
    assert [x["id"] for x in listed] == [x["id"] for x in reversed(mine)]

    assert_error(
        await client.get(f"/v1/buildings/{theirs['id']}/assets", headers=a.viewer.headers), 404
    )
    created = await client.post(
        f"/v1/buildings/{theirs['id']}/assets", json=BODY, headers=a.admin.headers
    )
    assert_error(created, 404)
    url = f"/v1/assets/{foreign_asset['id']}"
    assert_error(await client.get(url, headers=a.admin.headers), 404)
    assert_error(await client.patch(url, json={"location": "x"}, headers=a.admin.headers), 404)
    assert (await client.get(url, headers=b.viewer.headers)).json() == foreign_asset
    unknown = f"/v1/buildings/{uuid.uuid4()}/assets"
    assert_error(await client.get(unknown, headers=a.viewer.headers), 404)
