"""The rules API: listing and filters, versions, publishing, tenancy and roles."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.buildings.helpers import MakeTenant, assert_error, walk


def own_rule(code: str, version: str = "1.0.0", **fields: Any) -> dict[str, Any]:
    return {
        "code": code,
        "version": version,
        "title": "Weekly pump churn",
        "standard": "AS 1851-2012",
        "clause": "Section 3",
        "asset_type": "fire_pump",
        "frequency": "weekly",
        "checklist": [
            {
                "key": "started",
                "prompt": "Pump started",
                "type": "pass_fail",
                "defects": {"fail": {"severity": "critical", "remark": "Did not start"}},
            }
        ],
        **fields,
    }


def next_version(body: dict[str, Any], version: str) -> dict[str, Any]:
    out = {k: v for k, v in body.items() if k not in ("code", "asset_type", "frequency")}
    out["version"] = version
    return out


def unique_code() -> str:
    return f"ACME-{uuid.uuid4().hex[:8].upper()}"


async def test_list_filters_and_pages(client: httpx.AsyncClient, make_tenant: MakeTenant) -> None:
    tenant = await make_tenant()
    everything = await walk(client, "/v1/rules", tenant.viewer, limit=7)
    codes = [r["code"] for r in everything]
    assert len(codes) == len(set(codes))
    assert "AS1851-EXT-6M" in codes and "AS2293-EMLIGHT-12M" in codes
    assert all(r["shipped"] for r in everything)

    doors = await walk(
        client, "/v1/rules", tenant.viewer, limit=50, params=[("asset_type", "fire_door")]
    )
    assert {r["code"] for r in doors} == {"AS1851-DOOR-6M", "AS1851-DOOR-12M"}
    yearly_doors = await walk(
        client,
        "/v1/rules",
        tenant.viewer,
        limit=50,
        params=[("asset_type", "fire_door"), ("frequency", "yearly")],
    )
    assert [r["code"] for r in yearly_doors] == ["AS1851-DOOR-12M"]
    lighting = await walk(
        client, "/v1/rules", tenant.viewer, limit=50, params=[("standard", "AS/NZS 2293.2:2019")]
    )
    assert {r["asset_type"] for r in lighting} == {"emergency_light", "exit_sign"}

    bad = await client.get(
        "/v1/rules", params={"frequency": "fortnightly"}, headers=tenant.viewer.headers
    )
    assert_error(bad, 422)
    first = (
        await client.get("/v1/rules", params={"limit": 2}, headers=tenant.viewer.headers)
    ).json()
    foreign = await client.get(
        "/v1/rules",
        params={"limit": 2, "cursor": first["next_cursor"], "asset_type": "fire_door"},
        headers=tenant.viewer.headers,
    )
    assert_error(foreign, 400)


async def test_get_rule_and_version(client: httpx.AsyncClient, make_tenant: MakeTenant) -> None:
    tenant = await make_tenant()
    response = await client.get("/v1/rules/AS1851-EXT-5Y", headers=tenant.viewer.headers)
    assert response.status_code == 200
    rule = response.json()
    assert rule["frequency"] == "5-yearly" and rule["asset_type"] == "fire_extinguisher"
    assert [v["version"] for v in rule["versions"]] == ["1.0.0"]
    version = rule["versions"][0]
    assert version["shipped"] is True and version["published_by"] is None
    assert {i["key"] for i in version["checklist"]} >= {"test_pressure", "test_stamp"}

    one = await client.get("/v1/rules/AS1851-EXT-5Y/versions/1.0.0", headers=tenant.viewer.headers)
    assert one.status_code == 200 and one.json() == version
    assert_error(
        await client.get("/v1/rules/AS1851-EXT-5Y/versions/9.9.9", headers=tenant.viewer.headers),
        404,
    )
    assert_error(await client.get("/v1/rules/NOPE", headers=tenant.viewer.headers), 404)
    assert_error(await client.get("/v1/rules"), 401)


async def test_publish_own_rule_and_versions(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant, other = await make_tenant(), await make_tenant()
    code = unique_code()
    body = own_rule(code)
    created = await client.post("/v1/rules", json=body, headers=tenant.admin.headers)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"/v1/rules/{code}/versions/1.0.0"
    assert created.json()["shipped"] is False
    assert created.json()["published_by"] == str(tenant.admin.id)
    # Defaults are filled in: what is stored is what is evaluated.
    assert created.json()["checklist"][0]["required"] is True

    assert_error(await client.post("/v1/rules", json=body, headers=tenant.admin.headers), 409)
    v2 = next_version(body, "1.1.0")
    v2["title"] = "Weekly pump churn, revised"
    published = await client.post(
        f"/v1/rules/{code}/versions", json=v2, headers=tenant.admin.headers
    )
    assert published.status_code == 201, published.text
    for stale in ("1.1.0", "1.0.5", "0.9.0"):
        again = await client.post(
            f"/v1/rules/{code}/versions",
            json=next_version(body, stale),
            headers=tenant.admin.headers,
        )
        assert_error(again, 409)

    detail = (await client.get(f"/v1/rules/{code}", headers=tenant.viewer.headers)).json()
    assert detail["latest_version"] == "1.1.0"
    assert [v["version"] for v in detail["versions"]] == ["1.1.0", "1.0.0"]
    # The old version is unchanged.
    old = await client.get(f"/v1/rules/{code}/versions/1.0.0", headers=tenant.viewer.headers)
    assert old.json()["title"] == "Weekly pump churn"

    listed = await walk(
        client, "/v1/rules", tenant.viewer, limit=100, params=[("asset_type", "fire_pump")]
    )
    assert code in {r["code"] for r in listed}

    # Another organisation sees none of it, and may use the same code for its own rule.
    assert_error(await client.get(f"/v1/rules/{code}", headers=other.viewer.headers), 404)
    assert_error(
        await client.get(f"/v1/rules/{code}/versions/1.0.0", headers=other.viewer.headers), 404
    )
    assert_error(
        await client.post(
            f"/v1/rules/{code}/versions",
            json=next_version(body, "2.0.0"),
            headers=other.admin.headers,
        ),
        404,
    )
    theirs = await walk(
        client, "/v1/rules", other.viewer, limit=100, params=[("asset_type", "fire_pump")]
    )
    assert code not in {r["code"] for r in theirs}
    same_code = await client.post("/v1/rules", json=body, headers=other.admin.headers)
    assert same_code.status_code == 201


async def test_shipped_rules_are_read_only(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    body = next_version(own_rule("X"), "2.0.0")
    refused = await client.post(
        "/v1/rules/AS1851-EXT-6M/versions", json=body, headers=tenant.admin.headers
    )
    assert "read-only" in assert_error(refused, 403)["detail"]
    reserved = await client.post(
        "/v1/rules", json=own_rule("AS1851-MINE"), headers=tenant.admin.headers
    )
    assert assert_error(reserved, 422)["errors"][0]["pointer"] == "/code"


async def test_roles(client: httpx.AsyncClient, make_tenant: MakeTenant) -> None:
    tenant = await make_tenant()
    code = unique_code()
    for user in (tenant.technician, tenant.viewer):
        assert_error(await client.post("/v1/rules", json=own_rule(code), headers=user.headers), 403)
        assert_error(
            await client.post(
                "/v1/rules/AS1851-EXT-6M/versions",
                json=next_version(own_rule(code), "2.0.0"),
                headers=user.headers,
            ),
            403,
        )
    for user in (tenant.technician, tenant.viewer, tenant.admin):
        assert (await client.get("/v1/rules", headers=user.headers)).status_code == 200


async def test_malformed_checklists_are_422(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    body = own_rule(unique_code())
    body["checklist"] = [body["checklist"][0], body["checklist"][0]]
    assert_error(await client.post("/v1/rules", json=body, headers=tenant.admin.headers), 422)
    body = own_rule(unique_code(), version="1.0")
    assert_error(await client.post("/v1/rules", json=body, headers=tenant.admin.headers), 422)
    body = own_rule(unique_code())
    body["checklist"][0]["type"] = "number"
    body["checklist"][0]["min"] = 3
    body["checklist"][0]["max"] = 1
    assert_error(await client.post("/v1/rules", json=body, headers=tenant.admin.headers), 422)
