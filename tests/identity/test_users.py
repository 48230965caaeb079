"""/v1/users: me, admin user management, roles and tenant isolation."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import func, select

from src.app.identity.models import User
from tests.identity.conftest import login

USER_FIELDS = {"id", "email", "role", "organisation_id", "is_active", "created_at", "updated_at"}


async def count_users(app, organisation_id: uuid.UUID) -> int:
    async with app.state.database.sessionmaker() as session:
        return int(
            (
                await session.execute(
                    select(func.count())
                    .select_from(User)
                    .where(User.organisation_id == organisation_id)
                )
            ).scalar_one()
        )


async def test_me(http: httpx.AsyncClient, make_tenant):
    tenant = await make_tenant()
    for person in (tenant.admin, tenant.technician, tenant.viewer):
        response = await http.get("/v1/users/me", headers=person.headers)
        assert response.status_code == 200
        body = response.json()
        assert set(body) == USER_FIELDS
        assert body["id"] == str(person.id)
        assert body["email"] == person.email
        assert body["role"] == person.role.value
        assert body["organisation_id"] == str(tenant.organisation_id)
        assert body["is_active"] is True
        assert body["created_at"].endswith("Z") and len(body["created_at"]) == 27


async def test_admin_creates_a_user_who_can_log_in(http: httpx.AsyncClient, make_tenant):
    tenant = await make_tenant()
    email = f"New.Person-{uuid.uuid4().hex[:8]}@Example.COM"
    response = await http.post(
        "/v1/users",
        json={"email": email, "password": "twelve chars", "role": "technician"},
        headers=tenant.admin.headers,
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == USER_FIELDS
    assert body["email"] == email.lower()
    assert body["role"] == "technician"
    assert body["organisation_id"] == str(tenant.organisation_id)
    assert "password" not in response.text and "hash" not in response.text
    tokens = await login(http, email, "twelve chars")
    me = await http.get("/v1/users/me", headers=tokens.headers)
    assert me.json()["id"] == body["id"]


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"email": "a@b.example", "password": "seven c", "role": "viewer"}, "/password"),
        ({"email": "not-an-email", "password": "long enough pw", "role": "viewer"}, "/email"),
        ({"email": "a@b.example", "password": "long enough pw", "role": "owner"}, "/role"),
        ({"email": "a@b.example", "password": "long enough pw"}, "/role"),
        (
            {"email": "a@b.example", "password": "long enough pw", "role": "viewer", "x": 1},
            "/x",
        ),
    ],
)
async def test_create_user_rejects_bad_input(
    http: httpx.AsyncClient, make_tenant, app, body: dict[str, object], pointer: str
):
    tenant = await make_tenant()
    response = await http.post("/v1/users", json=body, headers=tenant.admin.headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == pointer
    assert await count_users(app, tenant.organisation_id) == 3


async def test_create_user_with_a_taken_email_is_409(http: httpx.AsyncClient, make_tenant, app):
    tenant, other = await make_tenant(), await make_tenant()
    for email in (tenant.viewer.email, tenant.viewer.email.upper(), other.viewer.email):
        response = await http.post(
            "/v1/users",
            json={"email": email, "password": "long enough pw", "role": "viewer"},
            headers=tenant.admin.headers,
        )
        assert response.status_code == 409
        assert response.json()["error_code"] == "FIRE-409"
        assert response.json()["detail"] == "A user with this email already exists"
    assert await count_users(app, tenant.organisation_id) == 3


async def test_list_users_is_paginated_and_scoped(http: httpx.AsyncClient, make_tenant):
    tenant, other = await make_tenant(), await make_tenant()
    for n in range(3):
        response = await http.post(
            "/v1/users",
            json={
                "email": f"extra{n}-{uuid.uuid4().hex[:6]}@example.com",
                "password": "long enough pw",
                "role": "viewer",
            },
            headers=tenant.admin.headers,
        )
        assert response.status_code == 201
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = await http.get("/v1/users", params=params, headers=tenant.admin.headers)
        assert response.status_code == 200
        body = response.json()
        pages += 1
        seen += [item["id"] for item in body["data"]]
        assert all(item["organisation_id"] == str(tenant.organisation_id) for item in body["data"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3  # 6 users, 2 per page: the last full page ends the walk with null
    assert len(seen) == len(set(seen)) == 6
    assert str(other.admin.id) not in seen
    # Filters.
    viewers = await http.get("/v1/users?role=viewer", headers=tenant.admin.headers)
    assert {item["role"] for item in viewers.json()["data"]} == {"viewer"}
    assert len(viewers.json()["data"]) == 4
    # A cursor of this list is refused by the other organisation's list.
    first = await http.get("/v1/users?limit=1", headers=tenant.admin.headers)
    foreign = await http.get(
        "/v1/users",
        params={"limit": 1, "cursor": first.json()["next_cursor"]},
        headers=other.admin.headers,
    )
    assert foreign.status_code == 400


async def test_admin_changes_role_and_active_flag(http: httpx.AsyncClient, make_tenant):
    tenant = await make_tenant()
    path = f"/v1/users/{tenant.viewer.id}"
    promoted = await http.patch(path, json={"role": "technician"}, headers=tenant.admin.headers)
    assert promoted.status_code == 200
    assert promoted.json()["role"] == "technician"
    assert promoted.json()["updated_at"] > promoted.json()["created_at"]
    off = await http.patch(path, json={"is_active": False}, headers=tenant.admin.headers)
    assert off.json()["is_active"] is False
    listed = await http.get("/v1/users?is_active=false", headers=tenant.admin.headers)
    assert [item["id"] for item in listed.json()["data"]] == [str(tenant.viewer.id)]
    on = await http.patch(path, json={"is_active": True}, headers=tenant.admin.headers)
    assert on.json()["is_active"] is True
    again = await http.get(path, headers=tenant.admin.headers)
    assert again.json() == on.json()
    await login(http, tenant.viewer.email)  # reactivated users log in again


@pytest.mark.parametrize(
    "body", [{}, {"role": None}, {"is_active": None}, {"role": "root"}, {"email": "x@y.example"}]
)
async def test_patch_rejects_bad_input(http: httpx.AsyncClient, make_tenant, body):
    tenant = await make_tenant()
    response = await http.patch(
        f"/v1/users/{tenant.viewer.id}", json=body, headers=tenant.admin.headers
    )
    assert response.status_code == 422
    me = await http.get("/v1/users/me", headers=tenant.viewer.headers)
    assert me.json()["role"] == "viewer" and me.json()["is_active"] is True


@pytest.mark.parametrize("body", [{"is_active": False}, {"role": "viewer"}, {"role": "technician"}])
async def test_admin_cannot_demote_or_deactivate_themselves(
    http: httpx.AsyncClient, make_tenant, body
):
    tenant = await make_tenant()
    response = await http.patch(
        f"/v1/users/{tenant.admin.id}", json=body, headers=tenant.admin.headers
    )
    assert response.status_code == 409
    assert response.json()["error_code"] == "FIRE-409"
    assert response.json()["detail"] == (
        "An admin cannot demote or deactivate themselves; ask another admin"
    )
    me = await http.get("/v1/users/me", headers=tenant.admin.headers)
    assert me.status_code == 200
    assert me.json()["role"] == "admin" and me.json()["is_active"] is True


async def test_admin_may_patch_themselves_without_change(http: httpx.AsyncClient, make_tenant):
    tenant = await make_tenant()
    response = await http.patch(
        f"/v1/users/{tenant.admin.id}",
        json={"role": "admin", "is_active": True},
        headers=tenant.admin.headers,
    )
    assert response.status_code == 200
    assert (await http.get("/v1/users/me", headers=tenant.admin.headers)).status_code == 200


async def test_another_organisations_users_are_404(http: httpx.AsyncClient, make_tenant):
    tenant, other = await make_tenant(), await make_tenant()
    # Another organisation's user answers exactly like a user that does not exist.
    for user_id in (other.viewer.id, uuid.uuid4()):
        path = f"/v1/users/{user_id}"
        for response in (
            await http.get(path, headers=tenant.admin.headers),
            await http.patch(path, json={"is_active": False}, headers=tenant.admin.headers),
        ):
            assert response.status_code == 404
            assert response.json()["error_code"] == "FIRE-404"
            assert response.json()["detail"] == f"User {user_id} does not exist"
    me = await http.get("/v1/users/me", headers=other.viewer.headers)
    assert me.status_code == 200 and me.json()["is_active"] is True


WRITES = [
    ("POST", "/v1/users", {"email": "w@x.example", "password": "long enough pw", "role": "admin"}),
    ("PATCH", "/v1/users/{viewer}", {"role": "admin"}),
    ("POST", "/v1/auth/revocations", {"user_id": "{viewer}"}),
]
READS = ["/v1/users", "/v1/users/{viewer}", "/v1/auth/revocations"]


@pytest.mark.parametrize("role", ["viewer", "technician"])
async def test_admin_routes_are_403_for_other_roles(
    http: httpx.AsyncClient, make_tenant, app, role: str
):
    tenant = await make_tenant()
    person = tenant.users[role]
    for method, path, body in WRITES:
        filled = {
            key: (value.format(viewer=tenant.viewer.id) if isinstance(value, str) else value)
            for key, value in body.items()
        }
        response = await http.request(
            method, path.format(viewer=tenant.viewer.id), json=filled, headers=person.headers
        )
        assert response.status_code == 403, (method, path)
        assert response.json()["error_code"] == "FIRE-403"
    for path in READS:
        response = await http.get(path.format(viewer=tenant.viewer.id), headers=person.headers)
        assert response.status_code == 403, path
    # Nothing changed.
    assert await count_users(app, tenant.organisation_id) == 3
    me = await http.get("/v1/users/me", headers=tenant.viewer.headers)
    assert me.status_code == 200 and me.json()["role"] == "viewer"


async def test_create_user_honours_idempotency_key(http: httpx.AsyncClient, make_tenant, app):
    tenant = await make_tenant()
    body = {
        "email": f"retry-{uuid.uuid4().hex[:8]}@example.com",
        "password": "long enough pw",
        "role": "viewer",
    }
    headers = {**tenant.admin.headers, "Idempotency-Key": str(uuid.uuid4())}
    first = await http.post("/v1/users", json=body, headers=headers)
    retry = await http.post("/v1/users", json=body, headers=headers)
    assert first.status_code == retry.status_code == 201
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.content == first.content
    assert await count_users(app, tenant.organisation_id) == 4
    # Without a key the same body is a second create: the email is taken.
    again = await http.post("/v1/users", json=body, headers=tenant.admin.headers)
    assert again.status_code == 409
