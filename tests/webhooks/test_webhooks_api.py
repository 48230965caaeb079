"""The webhook subscription API: secret shown once, admin only, scoped to the organisation."""

from __future__ import annotations

import uuid

import httpx

from tests.buildings.helpers import MakeTenant, assert_error, walk

BODY = {"url": "https://hooks.example.com/firemode", "event_types": ["defect.raised"]}


async def test_create_list_update_delete(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    created = await client.post("/v1/webhooks", json=BODY, headers=t.admin.headers)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"].startswith("whsec_") and len(body["secret"]) > 40
    assert body["active"] is True and body["event_types"] == ["defect.raised"]
    sub = body["id"]
    assert created.headers["location"] == f"/v1/webhooks/{sub}"
    shown = (await client.get(f"/v1/webhooks/{sub}", headers=t.admin.headers)).json()
    assert "secret" not in shown
    listed = await walk(client, "/v1/webhooks", t.admin, limit=10)
    assert [s["id"] for s in listed] == [sub] and "secret" not in listed[0]

    changed = await client.patch(
        f"/v1/webhooks/{sub}",
        json={"event_types": ["*"], "active": False, "url": "http://127.0.0.1:9/x"},
        headers=t.admin.headers,
    )
    assert changed.status_code == 200
    assert changed.json()["event_types"] == ["*"] and changed.json()["active"] is False
    deliveries = await client.get(f"/v1/webhooks/{sub}/deliveries", headers=t.admin.headers)
    assert deliveries.json() == {"data": [], "next_cursor": None}
    assert (await client.delete(f"/v1/webhooks/{sub}", headers=t.admin.headers)).status_code == 204
    assert_error(await client.get(f"/v1/webhooks/{sub}", headers=t.admin.headers), 404)


async def test_invalid_subscriptions(client: httpx.AsyncClient, make_tenant: MakeTenant) -> None:
    t = await make_tenant()
    for body in (
        {**BODY, "event_types": ["defect.exploded"]},
        {**BODY, "event_types": []},
        {**BODY, "url": "ftp://example.com/x"},
        {**BODY, "url": "not a url"},
        {**BODY, "extra": 1},
    ):
        assert_error(await client.post("/v1/webhooks", json=body, headers=t.admin.headers), 422)
    sub = (await client.post("/v1/webhooks", json=BODY, headers=t.admin.headers)).json()["id"]
    assert_error(
        await client.patch(f"/v1/webhooks/{sub}", json={"active": None}, headers=t.admin.headers),
        422,
    )


async def test_roles_and_tenancy(client: httpx.AsyncClient, make_tenant: MakeTenant) -> None:
    t, other = await make_tenant(), await make_tenant()
    sub = (await client.post("/v1/webhooks", json=BODY, headers=t.admin.headers)).json()["id"]
    delivery = uuid.uuid4()
    routes = [
        ("POST", "/v1/webhooks", BODY),
        ("GET", "/v1/webhooks", None),
        ("GET", f"/v1/webhooks/{sub}", None),
        ("PATCH", f"/v1/webhooks/{sub}", {"active": False}),
        ("DELETE", f"/v1/webhooks/{sub}", None),
        ("GET", f"/v1/webhooks/{sub}/deliveries", None),
        ("POST", f"/v1/webhooks/{sub}/deliveries/{delivery}/retry", None),
    ]
    for method, url, body in routes:
        for user in (t.technician, t.viewer):
            response = await client.request(method, url, json=body, headers=user.headers)
            assert_error(response, 403)
        assert_error(await client.request(method, url, json=body), 401)
    for method, url, body in routes[2:]:
        response = await client.request(method, url, json=body, headers=other.admin.headers)
        assert_error(response, 404)
    theirs = await walk(client, "/v1/webhooks", other.admin, limit=10)
    assert theirs == []
    assert_error(
        await client.post(
            f"/v1/webhooks/{sub}/deliveries/{delivery}/retry", headers=t.admin.headers
        ),
        404,
    )
