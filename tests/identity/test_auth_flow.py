"""Login, refresh rotation with reuse detection, logout."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import httpx
import jwt
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import select, update

from src.app.core.clock import utc_now
from src.app.identity.models import RefreshToken, RevokedToken, User
from src.app.identity.passwords import verify_password
from src.app.identity.revocation import TOKEN_REVOKED
from src.app.identity.tokens import hash_refresh_token
from tests.conftest import TEST_PASSWORD, TEST_SECRET
from tests.identity.conftest import Tokens, assert_401, login

ME = "/v1/users/me"
WRONG = "The email or password is incorrect"
INVALID_REFRESH = "The refresh token is invalid, expired or revoked"
REUSED = "The refresh token was already used; its session has been revoked. Log in again"


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/v1/auth/refresh", json={"refresh_token": token})


def pair(response: httpx.Response) -> Tokens:
    assert response.status_code == 200, response.text
    return Tokens(response.json()["access_token"], response.json()["refresh_token"])


async def test_login_answers_the_documented_shape(http: httpx.AsyncClient, make_tenant, app):
    tenant = await make_tenant()
    response = await http.post(
        "/v1/auth/login", json={"email": tenant.technician.email, "password": TEST_PASSWORD}
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert response.headers["cache-control"] == "no-store"
    header = jwt.get_unverified_header(body["access_token"])
    assert header == {"alg": "HS256", "typ": "at+jwt"}
    claims = jwt.decode(
        body["access_token"], TEST_SECRET, algorithms=["HS256"], audience="firemode-api"
    )
    assert claims["iss"] == "firemode"
    assert claims["sub"] == str(tenant.technician.id)
    assert claims["org"] == str(tenant.organisation_id)
    assert claims["role"] == "technician"
    assert claims["exp"] - claims["iat"] == 900
    assert claims["nbf"] == claims["iat"]
    assert claims["iat_us"] // 1_000_000 == claims["iat"]
    assert set(claims) == {"iss", "aud", "sub", "org", "role", "jti", "iat", "nbf", "exp", "iat_us"}
    # Opaque, 256 bits, stored only as its hash.
    assert len(body["refresh_token"]) == 43
    async with app.state.database.sessionmaker() as session:
        row = (
            await session.execute(
                select(RefreshToken).where(RefreshToken.user_id == tenant.technician.id)
            )
        ).scalar_one()
    assert row.token_hash == hash_refresh_token(body["refresh_token"])
    assert body["refresh_token"] not in row.token_hash
    assert row.access_jti == claims["jti"]
    assert row.expires_at - row.created_at == timedelta(days=30)


async def test_login_email_is_case_insensitive(http: httpx.AsyncClient, make_tenant):
    tenant = await make_tenant()
    tokens = await login(http, "  " + tenant.viewer.email.upper() + " ")
    me = await http.get(ME, headers=tokens.headers)
    assert me.json()["email"] == tenant.viewer.email


async def test_wrong_password_and_unknown_email_give_the_same_401(
    http: httpx.AsyncClient, make_tenant
):
    tenant = await make_tenant()
    wrong_password = await http.post(
        "/v1/auth/login", json={"email": tenant.admin.email, "password": "not the password!"}
    )
    unknown_email = await http.post(
        "/v1/auth/login", json={"email": "nobody@firemode.test", "password": TEST_PASSWORD}
    )
    assert_401(wrong_password, WRONG)
    assert_401(unknown_email, WRONG)
    assert wrong_password.json()["message"] == unknown_email.json()["message"]


async def test_deactivated_user_cannot_log_in(http: httpx.AsyncClient, make_tenant):
    tenant = await make_tenant()
    response = await http.patch(
        f"/v1/users/{tenant.viewer.id}", json={"is_active": False}, headers=tenant.admin.headers
    )
    assert response.status_code == 200
    attempt = await http.post(
        "/v1/auth/login", json={"email": tenant.viewer.email, "password": TEST_PASSWORD}
    )
    assert_401(attempt, WRONG)


async def test_login_rejects_bad_bodies(http: httpx.AsyncClient):
    for body in ({}, {"email": "a@b.example"}, {"email": "a@b.example", "password": ""}):
        response = await http.post("/v1/auth/login", json=body)
        assert response.status_code == 422
        assert response.json()["error_code"] == "FIRE-422"
    extra = await http.post(
        "/v1/auth/login", json={"email": "a@b.example", "password": "x" * 12, "remember": True}
    )
    assert extra.status_code == 422
    assert extra.json()["errors"][0]["pointer"] == "/remember"


async def test_rehash_on_login_when_parameters_changed(http: httpx.AsyncClient, make_tenant, app):
    tenant = await make_tenant()
    weak = Argon2Hasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(TEST_PASSWORD)
    async with app.state.database.sessionmaker() as session:
        await session.execute(
            update(User).where(User.id == tenant.viewer.id).values(password_hash=weak)
        )
        await session.commit()
    await login(http, tenant.viewer.email)
    async with app.state.database.sessionmaker() as session:
        stored = (
            await session.execute(select(User.password_hash).where(User.id == tenant.viewer.id))
        ).scalar_one()
    assert stored != weak
    assert "m=8192" in weak and "m=8192" not in stored
    assert await verify_password(TEST_PASSWORD, stored) == (True, None)
    await login(http, tenant.viewer.email)  # the new hash works


async def test_login_use_refresh_use_logout(http: httpx.AsyncClient, make_tenant):
    tenant = await make_tenant()
    first = await login(http, tenant.technician.email)
    assert (await http.get(ME, headers=first.headers)).status_code == 200

    second = pair(await refresh(http, first.refresh))
    assert second.access != first.access and second.refresh != first.refresh
    me = await http.get(ME, headers=second.headers)
    assert me.status_code == 200
    assert me.json()["id"] == str(tenant.technician.id)

    assert (await http.post("/v1/auth/logout", headers=second.headers)).status_code == 204
    assert_401(await http.get(ME, headers=second.headers), TOKEN_REVOKED)
    # Logout ended the whole session: the earlier access token of the same login too
    # (it was still within its lifetime), and the refresh token.
    assert_401(await http.get(ME, headers=first.headers), TOKEN_REVOKED)
    assert_401(await refresh(http, second.refresh), INVALID_REFRESH)


async def test_logout_leaves_the_users_other_sessions_alone(http: httpx.AsyncClient, make_tenant):
    tenant = await make_tenant()
    phone = await login(http, tenant.technician.email)
    tablet = await login(http, tenant.technician.email)
    assert (await http.post("/v1/auth/logout", headers=phone.headers)).status_code == 204
    assert_401(await http.get(ME, headers=phone.headers), TOKEN_REVOKED)
    assert (await http.get(ME, headers=tablet.headers)).status_code == 200
    assert pair(await refresh(http, tablet.refresh)).access


async def test_logout_with_a_refresh_token_in_the_body(http: httpx.AsyncClient, make_tenant):
    tenant = await make_tenant()
    untouched = await login(http, tenant.technician.email)
    other_session = await login(http, tenant.technician.email)
    someone_else = await login(http, tenant.viewer.email)

    async def logout_with(body: dict[str, str]) -> Tokens:
        current = await login(http, tenant.technician.email)
        response = await http.post("/v1/auth/logout", json=body, headers=current.headers)
        assert response.status_code == 204
        assert response.content == b""
        assert_401(await http.get(ME, headers=current.headers), TOKEN_REVOKED)
        return current

    # The caller's own refresh token of another session: that family is revoked too.
    await logout_with({"refresh_token": other_session.refresh})
    assert_401(await refresh(http, other_session.refresh), INVALID_REFRESH)
    # Another user's refresh token, or garbage: ignored (RFC 7009), logout still succeeds.
    await logout_with({"refresh_token": someone_else.refresh})
    assert pair(await refresh(http, someone_else.refresh)).access
    await logout_with({"refresh_token": "garbage-token"})
    assert pair(await refresh(http, untouched.refresh)).access

    bad = await http.post("/v1/auth/logout", json={"refresh": "x"}, headers=untouched.headers)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["pointer"] == "/refresh"


async def test_logout_needs_a_valid_access_token(http: httpx.AsyncClient):
    assert_401(await http.post("/v1/auth/logout"))


async def test_reuse_of_a_refresh_token_revokes_the_family(http: httpx.AsyncClient, make_tenant):
    tenant = await make_tenant()
    original = await login(http, tenant.technician.email)
    unrelated = await login(http, tenant.technician.email)
    # The thief uses the stolen refresh token first, and keeps rotating...
    first = pair(await refresh(http, original.refresh))
    thief = pair(await refresh(http, first.refresh))
    assert (await http.get(ME, headers=thief.headers)).status_code == 200
    # ...then the owner presents the same (now used) token, whose successor was used
    # (so no retry grace applies): theft detected.
    assert_401(await refresh(http, original.refresh), REUSED)
    # The whole family is dead: the thief's refresh and access tokens included.
    assert_401(await refresh(http, thief.refresh), INVALID_REFRESH)
    assert_401(await http.get(ME, headers=thief.headers), TOKEN_REVOKED)
    assert_401(await http.get(ME, headers=first.headers), TOKEN_REVOKED)
    assert_401(await http.get(ME, headers=original.headers), TOKEN_REVOKED)
    # Another login of the same user is another family, untouched.
    assert (await http.get(ME, headers=unrelated.headers)).status_code == 200
    assert pair(await refresh(http, unrelated.refresh)).access


async def test_refresh_chain_records_family_and_parent(http: httpx.AsyncClient, make_tenant, app):
    tenant = await make_tenant()
    first = await login(http, tenant.viewer.email)
    second = pair(await refresh(http, first.refresh))
    third = pair(await refresh(http, second.refresh))
    async with app.state.database.sessionmaker() as session:
        rows = {
            row.token_hash: row
            for row in (
                await session.execute(
                    select(RefreshToken).where(RefreshToken.user_id == tenant.viewer.id)
                )
            ).scalars()
        }
    a, b, c = (rows[hash_refresh_token(t.refresh)] for t in (first, second, third))
    assert a.family_id == b.family_id == c.family_id
    assert (a.parent_id, b.parent_id, c.parent_id) == (None, a.id, b.id)
    assert a.used_at is not None and b.used_at is not None and c.used_at is None
    assert c.revoked_at is None


async def test_refresh_token_expiry(http: httpx.AsyncClient, make_tenant, app):
    tenant = await make_tenant()
    tokens = await login(http, tenant.viewer.email)
    async with app.state.database.sessionmaker() as session:
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.token_hash == hash_refresh_token(tokens.refresh))
            .values(expires_at=utc_now() - timedelta(seconds=1))
        )
        await session.commit()
    assert_401(await refresh(http, tokens.refresh), INVALID_REFRESH)


async def test_refresh_for_a_deactivated_user_is_refused(http: httpx.AsyncClient, make_tenant):
    tenant = await make_tenant()
    tokens = await login(http, tenant.viewer.email)
    response = await http.patch(
        f"/v1/users/{tenant.viewer.id}", json={"is_active": False}, headers=tenant.admin.headers
    )
    assert response.status_code == 200
    assert_401(await refresh(http, tokens.refresh), INVALID_REFRESH)


async def test_refresh_issues_the_current_role(http: httpx.AsyncClient, make_tenant):
    tenant = await make_tenant()
    tokens = await login(http, tenant.viewer.email)
    await http.patch(
        f"/v1/users/{tenant.viewer.id}", json={"role": "technician"}, headers=tenant.admin.headers
    )
    # A role change revokes the user's tokens (they carry the old role): log in again.
    assert_401(await refresh(http, tokens.refresh), INVALID_REFRESH)
    fresh = await login(http, tenant.viewer.email)
    claims = jwt.decode(fresh.access, TEST_SECRET, algorithms=["HS256"], audience="firemode-api")
    assert claims["role"] == "technician"


async def test_unknown_and_malformed_refresh_tokens(http: httpx.AsyncClient):
    assert_401(await refresh(http, "x" * 43), INVALID_REFRESH)
    assert (await http.post("/v1/auth/refresh", json={})).status_code == 422
    assert (await http.post("/v1/auth/refresh", json={"refresh_token": ""})).status_code == 422


async def test_logout_writes_the_jti_until_the_tokens_expiry(
    http: httpx.AsyncClient, make_tenant, app
):
    tenant = await make_tenant()
    tokens = await login(http, tenant.viewer.email)
    claims = jwt.decode(tokens.access, TEST_SECRET, algorithms=["HS256"], audience="firemode-api")
    assert (await http.post("/v1/auth/logout", headers=tokens.headers)).status_code == 204
    async with app.state.database.sessionmaker() as session:
        row = (
            await session.execute(select(RevokedToken).where(RevokedToken.jti == claims["jti"]))
        ).scalar_one()
    assert int(row.expires_at.timestamp()) == claims["exp"]
    assert row.user_id == tenant.viewer.id
    assert row.organisation_id == tenant.organisation_id
    assert row.kind == "token"
    assert row.reason == "logout"
    assert row.revoked_by_id == tenant.viewer.id


async def test_login_for_every_role_reaches_me(http: httpx.AsyncClient, make_tenant):
    tenant = await make_tenant()
    for person in (tenant.admin, tenant.technician, tenant.viewer):
        tokens = await login(http, person.email)
        body = (await http.get(ME, headers=tokens.headers)).json()
        assert body["role"] == person.role.value
        assert uuid.UUID(body["id"]) == person.id


async def test_no_password_or_token_is_ever_logged(http: httpx.AsyncClient, make_tenant, caplog):
    from src.app.core.logging import JsonFormatter

    tenant = await make_tenant()
    secret_password = "a password nobody logs"
    with caplog.at_level(logging.DEBUG):
        created = await http.post(
            "/v1/users",
            json={
                "email": f"logged-{uuid.uuid4().hex[:8]}@example.com",
                "password": secret_password,
                "role": "viewer",
            },
            headers=tenant.admin.headers,
        )
        email = created.json()["email"]
        wrong = await http.post("/v1/auth/login", json={"email": email, "password": "wrong" * 3})
        assert wrong.status_code == 401
        tokens = await login(http, email, secret_password)
        rotated = pair(await refresh(http, tokens.refresh))
        retried = pair(await refresh(http, tokens.refresh))  # within the retry grace
        later = pair(await refresh(http, retried.refresh))
        assert_401(await refresh(http, tokens.refresh), REUSED)
        fresh = await login(http, email, secret_password)
        assert (await http.post("/v1/auth/logout", headers=fresh.headers)).status_code == 204
    formatter = JsonFormatter()
    logged = "\n".join(formatter.format(record) for record in caplog.records)
    assert "login succeeded" in logged and "refresh token reuse detected" in logged
    assert "refresh retried within the grace interval" in logged
    for secret in (
        secret_password,
        "wrong" * 3,
        tokens.access,
        tokens.refresh,
        rotated.access,
        rotated.refresh,
        retried.access,
        retried.refresh,
        later.access,
        later.refresh,
        fresh.access,
        fresh.refresh,
        tenant.admin.token,
    ):
        assert secret not in logged
