"""Admin revocations, revoke-all at sub-second precision, and the role/deactivation rules."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import jwt
from sqlalchemy import select

from src.app.identity.models import RefreshToken, RevokedToken, User
from src.app.identity.revocation import ALL_REVOKED, TOKEN_REVOKED
from src.app.identity.tokens import issue_access_token
from tests.conftest import TEST_SECRET
from tests.identity.conftest import assert_401, login

ME = "/v1/users/me"
REVOCATION_FIELDS = {
    "id",
    "kind",
    "jti",
    "user_id",
    "reason",
    "revoked_by",
    "expires_at",
    "created_at",
    "updated_at",
}


def jti_of(token: str) -> str:
    return str(jwt.decode(token, TEST_SECRET, algorithms=["HS256"], audience="firemode-api")["jti"])


async def test_revoke_one_token_by_jti(http: httpx.AsyncClient, make_tenant):
    tenant = await make_tenant()
    target = await login(http, tenant.technician.email)
    bystander = await login(http, tenant.technician.email)
    jti = jti_of(target.access)
    response = await http.post(
        "/v1/auth/revocations",
        json={"jti": jti, "reason": "lost tablet"},
        headers=tenant.admin.headers,
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == REVOCATION_FIELDS
    assert body["kind"] == "token"
    assert body["jti"] == jti
    assert body["user_id"] == str(tenant.technician.id)
    assert body["revoked_by"] == str(tenant.admin.id)
    assert body["reason"] == "lost tablet"
    exp = jwt.decode(target.access, TEST_SECRET, algorithms=["HS256"], audience="firemode-api")[
        "exp"
    ]
    # Kept exactly as long as the token lives.
    assert body["expires_at"] == datetime.fromtimestamp(exp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert_401(await http.get(ME, headers=target.headers), TOKEN_REVOKED)
    # The session of that token is over too (its refresh token), other sessions are not.
    refreshed = await http.post("/v1/auth/refresh", json={"refresh_token": target.refresh})
    assert_401(refreshed)
    assert (await http.get(ME, headers=bystander.headers)).status_code == 200
    # Revoking it again answers the existing record.
    again = await http.post("/v1/auth/revocations", json={"jti": jti}, headers=tenant.admin.headers)
    assert again.status_code == 200
    assert again.json() == body
    listed = await http.get("/v1/auth/revocations", headers=tenant.admin.headers)
    rows = [row for row in listed.json()["data"] if row["jti"] == jti]
    assert len(rows) == 1
    assert rows[0]["id"] == body["id"]


async def test_revoke_all_of_a_users_tokens(http: httpx.AsyncClient, make_tenant, app):
    tenant = await make_tenant()
    sessions = [await login(http, tenant.viewer.email) for _ in range(2)]
    response = await http.post(
        "/v1/auth/revocations",
        json={"user_id": str(tenant.viewer.id)},
        headers=tenant.admin.headers,
    )
    assert response.status_code == 201
    body = response.json()
    assert body["kind"] == "all_tokens"
    assert body["jti"] is None
    assert body["user_id"] == str(tenant.viewer.id)
    assert body["reason"] == "revoked by an admin"
    for tokens in sessions:
        assert_401(await http.get(ME, headers=tokens.headers), ALL_REVOKED)
        refreshed = await http.post("/v1/auth/refresh", json={"refresh_token": tokens.refresh})
        assert_401(refreshed)
    # The user may log in again at once.
    fresh = await login(http, tenant.viewer.email)
    assert (await http.get(ME, headers=fresh.headers)).status_code == 200
    async with app.state.database.sessionmaker() as session:
        revoked_refresh = (
            await session.execute(
                select(RefreshToken.revoked_at).where(
                    RefreshToken.user_id == tenant.viewer.id, RefreshToken.parent_id.is_(None)
                )
            )
        ).scalars()
        assert sum(1 for value in revoked_refresh if value is not None) == 2


async def test_revoke_all_in_the_same_second_orders_tokens_exactly(
    http: httpx.AsyncClient, make_tenant, app
):
    """``iat`` has one-second resolution; the revoke-all instant is compared with the
    token's microsecond issue time (``iat_us``), so within one second a token issued just
    before the revoke-all is refused and one issued just after it passes."""
    tenant = await make_tenant()
    settings = app.state.settings
    person = tenant.technician
    for _attempt in range(10):
        response = await http.post(
            "/v1/auth/revocations", json={"user_id": str(person.id)}, headers=tenant.admin.headers
        )
        assert response.status_code == 201
        async with app.state.database.sessionmaker() as session:
            instant = (
                await session.execute(select(User.tokens_valid_after).where(User.id == person.id))
            ).scalar_one()
        # Room on both sides within the same second (fails 2 times in a million).
        if 1 <= instant.microsecond <= 999_998:
            break
    assert instant is not None and 1 <= instant.microsecond <= 999_998

    def token_at(offset_us: int) -> tuple[str, int]:
        issued = issue_access_token(
            settings,
            user_id=person.id,
            organisation_id=tenant.organisation_id,
            role="technician",
            now=instant + timedelta(microseconds=offset_us),
        )
        iat = jwt.decode(issued.token, TEST_SECRET, algorithms=["HS256"], audience="firemode-api")
        return issued.token, iat["iat"]

    before, before_iat = token_at(-1)
    at, at_iat = token_at(0)
    after, after_iat = token_at(+1)
    # All three share the revoke-all's second: ``iat`` alone could not tell them apart.
    assert before_iat == at_iat == after_iat == int(instant.timestamp())
    assert_401(await http.get(ME, headers={"Authorization": f"Bearer {before}"}), ALL_REVOKED)
    assert_401(await http.get(ME, headers={"Authorization": f"Bearer {at}"}), ALL_REVOKED)
    accepted = await http.get(ME, headers={"Authorization": f"Bearer {after}"})
    assert accepted.status_code == 200, accepted.text


async def test_login_right_after_revoke_all_is_not_refused(http: httpx.AsyncClient, make_tenant):
    tenant = await make_tenant()
    for _ in range(3):
        response = await http.post(
            "/v1/auth/revocations",
            json={"user_id": str(tenant.viewer.id)},
            headers=tenant.admin.headers,
        )
        assert response.status_code == 201
        # Most often in the very same second as the revoke-all.
        tokens = await login(http, tenant.viewer.email)
        assert (await http.get(ME, headers=tokens.headers)).status_code == 200


async def test_revocation_body_rules(http: httpx.AsyncClient, make_tenant):
    tenant = await make_tenant()
    for body in (
        {},
        {"jti": "a", "user_id": str(tenant.viewer.id)},
        {"user_id": "not-a-uuid"},
        {"jti": ""},
        {"jti": "x" * 65},
        {"user_id": str(tenant.viewer.id), "reason": "r" * 201},
        {"user_id": str(tenant.viewer.id), "extra": 1},
    ):
        response = await http.post("/v1/auth/revocations", json=body, headers=tenant.admin.headers)
        assert response.status_code == 422, body
        assert response.json()["error_code"] == "FIRE-422"
    assert (await http.get(ME, headers=tenant.viewer.headers)).status_code == 200


async def test_revocations_are_scoped_to_the_organisation(
    http: httpx.AsyncClient, make_tenant, app
):
    tenant, other = await make_tenant(), await make_tenant()
    theirs = await login(http, other.technician.email)
    for body in (
        {"user_id": str(other.technician.id)},
        {"jti": jti_of(theirs.access)},
        {"user_id": str(uuid.uuid4())},
        {"jti": str(uuid.uuid4())},
    ):
        response = await http.post("/v1/auth/revocations", json=body, headers=tenant.admin.headers)
        assert response.status_code == 404, body
        assert response.json()["error_code"] == "FIRE-404"
    assert (await http.get(ME, headers=theirs.headers)).status_code == 200
    # Their revocations never show in our list.
    revoked = await http.post(
        "/v1/auth/revocations",
        json={"user_id": str(other.viewer.id)},
        headers=other.admin.headers,
    )
    assert revoked.status_code == 201
    ours = await http.get("/v1/auth/revocations?limit=500", headers=tenant.admin.headers)
    assert ours.status_code == 200
    assert ours.json()["data"] == []
    assert ours.json()["next_cursor"] is None
    async with app.state.database.sessionmaker() as session:
        count = (
            await session.execute(
                select(RevokedToken.id).where(RevokedToken.organisation_id == other.organisation_id)
            )
        ).all()
    assert len(count) == 1


async def test_list_revocations_is_paginated_newest_first(http: httpx.AsyncClient, make_tenant):
    tenant = await make_tenant()
    made: list[str] = []
    for person in (tenant.viewer, tenant.technician, tenant.viewer):
        response = await http.post(
            "/v1/auth/revocations", json={"user_id": str(person.id)}, headers=tenant.admin.headers
        )
        made.append(response.json()["id"])
    first = await http.get("/v1/auth/revocations?limit=2", headers=tenant.admin.headers)
    assert [row["id"] for row in first.json()["data"]] == made[::-1][:2]
    cursor = first.json()["next_cursor"]
    assert cursor is not None
    second = await http.get(
        "/v1/auth/revocations", params={"limit": 2, "cursor": cursor}, headers=tenant.admin.headers
    )
    assert [row["id"] for row in second.json()["data"]] == made[:1]
    assert second.json()["next_cursor"] is None
    only_viewer = await http.get(
        f"/v1/auth/revocations?user_id={tenant.viewer.id}", headers=tenant.admin.headers
    )
    assert [row["id"] for row in only_viewer.json()["data"]] == [made[2], made[0]]
    # A cursor from the filtered list does not work on the unfiltered one.
    filtered = await http.get(
        f"/v1/auth/revocations?user_id={tenant.viewer.id}&limit=1", headers=tenant.admin.headers
    )
    mismatch = await http.get(
        "/v1/auth/revocations",
        params={"cursor": filtered.json()["next_cursor"]},
        headers=tenant.admin.headers,
    )
    assert mismatch.status_code == 400
    assert (
        await http.get("/v1/auth/revocations?limit=0", headers=tenant.admin.headers)
    ).status_code == 422


async def test_role_change_and_deactivation_revoke_everything(http: httpx.AsyncClient, make_tenant):
    tenant = await make_tenant()
    viewer = await login(http, tenant.viewer.email)
    technician = await login(http, tenant.technician.email)
    promoted = await http.patch(
        f"/v1/users/{tenant.viewer.id}", json={"role": "technician"}, headers=tenant.admin.headers
    )
    assert promoted.status_code == 200
    # The old token still says "viewer": it is refused rather than trusted.
    assert_401(await http.get(ME, headers=viewer.headers), ALL_REVOKED)
    off = await http.patch(
        f"/v1/users/{tenant.technician.id}", json={"is_active": False}, headers=tenant.admin.headers
    )
    assert off.status_code == 200
    assert_401(await http.get(ME, headers=technician.headers))
    on = await http.patch(
        f"/v1/users/{tenant.technician.id}", json={"is_active": True}, headers=tenant.admin.headers
    )
    assert on.status_code == 200
    # Reactivation restores nothing: the old token stays revoked, a new login works.
    assert_401(await http.get(ME, headers=technician.headers), ALL_REVOKED)
    fresh = await login(http, tenant.technician.email)
    assert (await http.get(ME, headers=fresh.headers)).status_code == 200


async def test_revocation_honours_idempotency_key(http: httpx.AsyncClient, make_tenant):
    tenant = await make_tenant()
    headers = {**tenant.admin.headers, "Idempotency-Key": "revoke-viewer-1"}
    body = {"user_id": str(tenant.viewer.id)}
    first = await http.post("/v1/auth/revocations", json=body, headers=headers)
    retry = await http.post("/v1/auth/revocations", json=body, headers=headers)
    assert first.status_code == retry.status_code == 201
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.content == first.content
    listed = await http.get("/v1/auth/revocations", headers=tenant.admin.headers)
    assert [row["id"] for row in listed.json()["data"]] == [first.json()["id"]]
    changed = await http.post(
        "/v1/auth/revocations", json={"user_id": str(tenant.technician.id)}, headers=headers
    )
    assert changed.status_code == 422
