"""Every way an access token must be refused: 401 FIRE-401, from the attacker's side.

Each forged token differs from a control token (which is accepted) in one respect only,
and names a real, active user: if a check were missing, the request would succeed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest

from src.app.identity.revocation import ALL_REVOKED, TOKEN_REVOKED, USER_DEACTIVATED
from tests.conftest import TEST_SECRET
from tests.identity import forge
from tests.identity.conftest import assert_401, login

ME = "/v1/users/me"
INVALID = "The access token is invalid"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_control_token_made_by_hand_is_accepted(http: httpx.AsyncClient, make_tenant):
    tenant = await make_tenant()
    token = forge.hs256(
        forge.claims(user_id=tenant.admin.id, organisation_id=tenant.organisation_id),
        TEST_SECRET,
    )
    response = await http.get(ME, headers=bearer(token))
    assert response.status_code == 200
    assert response.json()["id"] == str(tenant.admin.id)


async def test_no_authorization_header(http: httpx.AsyncClient):
    response = await http.get(ME)
    assert_401(response, "Authentication required: send Authorization: Bearer <access token>")
    assert response.headers["www-authenticate"] == 'Bearer realm="firemode"'


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        ("Token abc.def.ghi", "The Authorization header must be 'Bearer <access token>'"),
        ("Basic dXNlcjpwYXNz", "The Authorization header must be 'Bearer <access token>'"),
        ("Bearer", "The Authorization header must be 'Bearer <access token>'"),
        ("Bearer ", "The Authorization header must be 'Bearer <access token>'"),
        ("Bearer not-a-jwt", "The access token is malformed"),
        ("Bearer a.b.c", "The access token is malformed"),
    ],
)
async def test_malformed_authorization_header(http: httpx.AsyncClient, header: str, detail: str):
    assert_401(await http.get(ME, headers={"Authorization": header}), detail)


async def test_alg_none(http: httpx.AsyncClient, make_tenant):
    tenant = await make_tenant()
    token = forge.unsigned(
        forge.claims(user_id=tenant.admin.id, organisation_id=tenant.organisation_id)
    )
    assert_401(await http.get(ME, headers=bearer(token)), INVALID)


async def test_signed_with_another_key(http: httpx.AsyncClient, make_tenant):
    tenant = await make_tenant()
    token = forge.hs256(
        forge.claims(user_id=tenant.admin.id, organisation_id=tenant.organisation_id),
        "another-secret-" + "y" * 40,
    )
    assert_401(await http.get(ME, headers=bearer(token)), INVALID)


async def test_rs256_token(http: httpx.AsyncClient, make_tenant):
    tenant = await make_tenant()
    token = forge.rs256(
        forge.claims(user_id=tenant.admin.id, organisation_id=tenant.organisation_id)
    )
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    assert_401(await http.get(ME, headers=bearer(token)), INVALID)


async def test_hs256_without_the_access_token_type(http: httpx.AsyncClient, make_tenant):
    tenant = await make_tenant()
    payload = forge.claims(user_id=tenant.admin.id, organisation_id=tenant.organisation_id)
    for header in ({"alg": "HS256", "typ": "JWT"}, {"alg": "HS256"}):
        token = forge.hs256(payload, TEST_SECRET, header=header)
        assert_401(await http.get(ME, headers=bearer(token)), "The token is not an access token")


async def test_expired(http: httpx.AsyncClient, make_tenant):
    tenant = await make_tenant()
    now = datetime.now(UTC)
    token = forge.hs256(
        forge.claims(
            user_id=tenant.admin.id,
            organisation_id=tenant.organisation_id,
            issued_at=now - timedelta(minutes=20),
            expires_at=now - timedelta(seconds=30),  # beyond the 10-second leeway
        ),
        TEST_SECRET,
    )
    assert_401(await http.get(ME, headers=bearer(token)), "The access token has expired")


async def test_not_before_in_the_future(http: httpx.AsyncClient, make_tenant):
    tenant = await make_tenant()
    now = datetime.now(UTC)
    token = forge.hs256(
        forge.claims(
            user_id=tenant.admin.id,
            organisation_id=tenant.organisation_id,
            issued_at=now,
            not_before=now + timedelta(seconds=60),
        ),
        TEST_SECRET,
    )
    assert_401(await http.get(ME, headers=bearer(token)), "The access token is not valid yet")


async def test_wrong_audience(http: httpx.AsyncClient, make_tenant):
    tenant = await make_tenant()
    token = forge.hs256(
        forge.claims(
            user_id=tenant.admin.id, organisation_id=tenant.organisation_id, audience="other-api"
        ),
        TEST_SECRET,
    )
    assert_401(await http.get(ME, headers=bearer(token)), INVALID)


async def test_wrong_issuer(http: httpx.AsyncClient, make_tenant):
    tenant = await make_tenant()
    token = forge.hs256(
        forge.claims(
            user_id=tenant.admin.id, organisation_id=tenant.organisation_id, issuer="evil"
        ),
        TEST_SECRET,
    )
    assert_401(await http.get(ME, headers=bearer(token)), INVALID)


@pytest.mark.parametrize("claim", ["jti", "sub", "org", "role", "exp", "iat", "nbf", "iat_us"])
async def test_missing_required_claim(http: httpx.AsyncClient, make_tenant, claim: str):
    tenant = await make_tenant()
    payload = forge.claims(user_id=tenant.admin.id, organisation_id=tenant.organisation_id)
    del payload[claim]
    assert_401(await http.get(ME, headers=bearer(forge.hs256(payload, TEST_SECRET))), INVALID)


async def test_precise_issue_time_must_match_iat(http: httpx.AsyncClient, make_tenant):
    tenant = await make_tenant()
    payload = forge.claims(user_id=tenant.admin.id, organisation_id=tenant.organisation_id)
    payload["iat_us"] += 5_000_000
    assert_401(
        await http.get(ME, headers=bearer(forge.hs256(payload, TEST_SECRET))),
        "The access token's claims are malformed",
    )


async def test_unknown_role_claim(http: httpx.AsyncClient, make_tenant):
    tenant = await make_tenant()
    payload = forge.claims(
        user_id=tenant.admin.id, organisation_id=tenant.organisation_id, role="superuser"
    )
    assert_401(
        await http.get(ME, headers=bearer(forge.hs256(payload, TEST_SECRET))),
        "The access token's role is unknown",
    )


async def test_user_of_another_organisation_claim(http: httpx.AsyncClient, make_tenant):
    tenant, other = await make_tenant(), await make_tenant()
    payload = forge.claims(user_id=tenant.admin.id, organisation_id=other.organisation_id)
    assert_401(
        await http.get(ME, headers=bearer(forge.hs256(payload, TEST_SECRET))),
        "The access token's user does not exist",
    )


async def test_refresh_token_used_as_access_token(http: httpx.AsyncClient, make_tenant):
    tenant = await make_tenant()
    tokens = await login(http, tenant.technician.email)
    assert_401(await http.get(ME, headers=bearer(tokens.refresh)), "The access token is malformed")


async def test_access_token_used_as_refresh_token(http: httpx.AsyncClient, make_tenant):
    tenant = await make_tenant()
    tokens = await login(http, tenant.technician.email)
    response = await http.post("/v1/auth/refresh", json={"refresh_token": tokens.access})
    assert_401(response, "The refresh token is invalid, expired or revoked")


async def test_revoked_jti(http: httpx.AsyncClient, make_tenant):
    tenant = await make_tenant()
    tokens = await login(http, tenant.technician.email)
    assert (await http.get(ME, headers=tokens.headers)).status_code == 200
    assert (await http.post("/v1/auth/logout", headers=tokens.headers)).status_code == 204
    assert_401(await http.get(ME, headers=tokens.headers), TOKEN_REVOKED)


async def test_deactivated_user(http: httpx.AsyncClient, make_tenant):
    tenant = await make_tenant()
    assert (await http.get(ME, headers=tenant.technician.headers)).status_code == 200
    response = await http.patch(
        f"/v1/users/{tenant.technician.id}",
        json={"is_active": False},
        headers=tenant.admin.headers,
    )
    assert response.status_code == 200
    assert_401(await http.get(ME, headers=tenant.technician.headers), USER_DEACTIVATED)


async def test_issued_before_revoke_all(http: httpx.AsyncClient, make_tenant):
    tenant = await make_tenant()
    tokens = await login(http, tenant.technician.email)
    assert (await http.get(ME, headers=tokens.headers)).status_code == 200
    response = await http.post(
        "/v1/auth/revocations",
        json={"user_id": str(tenant.technician.id)},
        headers=tenant.admin.headers,
    )
    assert response.status_code == 201
    assert_401(await http.get(ME, headers=tokens.headers), ALL_REVOKED)


async def test_the_application_never_accepts_test_token_itself(make_app):
    """Only the test suite's decoder override maps ``test-token``; an app without the
    override refuses it like any other malformed token."""
    from tests.identity.conftest import client_for

    app = make_app()
    async with client_for(app) as client:
        response = await client.get(ME, headers=bearer("test-token"))
    assert_401(response, "The access token is malformed")
