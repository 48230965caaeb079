"""With Redis configured, a revocation is written to Redis before the database commit, and
refused with 503 (nothing recorded anywhere) when Redis does not take it: no revocation
is ever seen only by the processes that ask the database.

Two apps on the one test database, as two server processes would be: A cannot reach Redis
(a closed port), B can and trusts it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import jwt
import pytest

from src.app.identity.revocation import ALL_REVOKED, TOKEN_REVOKED, USER_DEACTIVATED
from tests.conftest import TEST_SECRET, Tenant
from tests.identity.conftest import (
    REDIS_URL,
    Tokens,
    assert_401,
    client_for,
    closed_port,
    login,
    redis_prefix,
)

ME = "/v1/users/me"
NOT_RECORDED = (
    "The revocation could not be recorded: the revocation cache (Redis) did not answer, "
    "so nothing was changed. Try again"
)
REUSED = "The refresh token was already used; its session has been revoked. Log in again"
INVALID_REFRESH = "The refresh token is invalid, expired or revoked"


def jti_of(token: str) -> str:
    claims = jwt.decode(token, TEST_SECRET, algorithms=["HS256"], audience="firemode-api")
    return str(claims["jti"])


def assert_503(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["error_code"] == "FIRE-503"
    assert body["retryable"] is True
    assert body["detail"] == NOT_RECORDED
    assert response.headers["retry-after"] == "1"


@pytest.fixture
def two_apps(make_app):
    """(A: Redis configured but unreachable, B: the real Redis), one database."""
    prefix = redis_prefix()
    unreachable = make_app(
        redis_url=f"redis://127.0.0.1:{closed_port()}/0", redis_key_prefix=prefix
    )
    reachable = make_app(redis_url=REDIS_URL, redis_key_prefix=prefix)
    return unreachable, reachable


Revoke = Callable[[httpx.AsyncClient, Tenant, Tokens], Awaitable[httpx.Response]]


async def _logout(client: httpx.AsyncClient, tenant: Tenant, tokens: Tokens) -> httpx.Response:
    return await client.post("/v1/auth/logout", headers=tokens.headers)


async def _revoke_jti(client: httpx.AsyncClient, tenant: Tenant, tokens: Tokens) -> httpx.Response:
    return await client.post(
        "/v1/auth/revocations", json={"jti": jti_of(tokens.access)}, headers=tenant.admin.headers
    )


async def _revoke_user(client: httpx.AsyncClient, tenant: Tenant, tokens: Tokens) -> httpx.Response:
    return await client.post(
        "/v1/auth/revocations",
        json={"user_id": str(tenant.technician.id)},
        headers=tenant.admin.headers,
    )


async def _deactivate(client: httpx.AsyncClient, tenant: Tenant, tokens: Tokens) -> httpx.Response:
    return await client.patch(
        f"/v1/users/{tenant.technician.id}", json={"is_active": False}, headers=tenant.admin.headers
    )


async def _change_role(client: httpx.AsyncClient, tenant: Tenant, tokens: Tokens) -> httpx.Response:
    return await client.patch(
        f"/v1/users/{tenant.technician.id}", json={"role": "viewer"}, headers=tenant.admin.headers
    )


CASES = [
    (_logout, 204, TOKEN_REVOKED),
    (_revoke_jti, 201, TOKEN_REVOKED),
    (_revoke_user, 201, ALL_REVOKED),
    (_deactivate, 200, USER_DEACTIVATED),
    (_change_role, 200, ALL_REVOKED),
]


@pytest.mark.parametrize(
    ("revoke", "status", "refusal"), CASES, ids=[case[0].__name__[1:] for case in CASES]
)
async def test_a_process_that_cannot_write_to_redis_revokes_nothing_and_answers_503(
    two_apps, make_tenant, redis_client, revoke: Revoke, status: int, refusal: str
):
    unreachable, reachable = two_apps
    tenant = await make_tenant()
    async with client_for(unreachable) as a, client_for(reachable) as b:
        tokens = await login(b, tenant.technician.email)
        assert (await b.get(ME, headers=tokens.headers)).status_code == 200
        store = reachable.state.revocation_checker.redis
        assert await redis_client.exists(store.key("rtl", "synced")) == 1  # B trusts Redis

        assert_503(await revoke(a, tenant, tokens))
        # Nothing was recorded anywhere: both processes agree the token is still good...
        assert (await a.get(ME, headers=tokens.headers)).status_code == 200
        assert (await b.get(ME, headers=tokens.headers)).status_code == 200
        listed = await b.get(
            "/v1/auth/revocations",
            params={"user_id": str(tenant.technician.id)},
            headers=tenant.admin.headers,
        )
        assert listed.json()["data"] == []
        user = await b.get(f"/v1/users/{tenant.technician.id}", headers=tenant.admin.headers)
        assert user.json()["role"] == "technician" and user.json()["is_active"] is True

        # ...and the admin's retry through a process that reaches Redis takes effect on
        # both at once (A through the database, B through Redis).
        assert (await revoke(b, tenant, tokens)).status_code == status
        assert_401(await b.get(ME, headers=tokens.headers), refusal)
        assert_401(await a.get(ME, headers=tokens.headers), refusal)


async def test_reuse_detection_without_redis_still_revokes_the_family(two_apps, make_tenant):
    """Failing towards revocation: the family is revoked in the database (every refresh
    reads it, on every process) and the reused token is refused, even though Redis could
    not be told."""
    unreachable, reachable = two_apps
    tenant = await make_tenant()
    async with client_for(unreachable) as a, client_for(reachable) as b:
        first = await login(b, tenant.viewer.email)
        second = await b.post("/v1/auth/refresh", json={"refresh_token": first.refresh})
        assert second.status_code == 200
        third = await b.post(
            "/v1/auth/refresh", json={"refresh_token": second.json()["refresh_token"]}
        )
        assert third.status_code == 200
        latest = Tokens(third.json()["access_token"], third.json()["refresh_token"])

        reused = await a.post("/v1/auth/refresh", json={"refresh_token": first.refresh})
        assert_401(reused, REUSED)
        assert_401(
            await b.post("/v1/auth/refresh", json={"refresh_token": latest.refresh}),
            INVALID_REFRESH,
        )
        assert_401(await a.get(ME, headers=latest.headers), TOKEN_REVOKED)
        listed = await b.get(
            "/v1/auth/revocations",
            params={"user_id": str(tenant.viewer.id)},
            headers=tenant.admin.headers,
        )
        revoked = {row["jti"] for row in listed.json()["data"]}
        assert jti_of(latest.access) in revoked
        assert {row["reason"] for row in listed.json()["data"]} == {"refresh token reuse detected"}


async def test_a_grace_retry_that_cannot_revoke_the_lost_pair_in_redis_is_503(
    two_apps, make_tenant
):
    unreachable, reachable = two_apps
    tenant = await make_tenant()
    async with client_for(unreachable) as a, client_for(reachable) as b:
        first = await login(b, tenant.technician.email)
        lost = await b.post("/v1/auth/refresh", json={"refresh_token": first.refresh})
        assert lost.status_code == 200
        lost_headers = {"Authorization": f"Bearer {lost.json()['access_token']}"}
        assert_503(await a.post("/v1/auth/refresh", json={"refresh_token": first.refresh}))
        # Rolled back whole: the successor is untouched, and the retry may be retried.
        assert (await b.get(ME, headers=lost_headers)).status_code == 200
        retried = await b.post("/v1/auth/refresh", json={"refresh_token": first.refresh})
        assert retried.status_code == 200
        assert_401(await b.get(ME, headers=lost_headers), TOKEN_REVOKED)
        assert_401(await a.get(ME, headers=lost_headers), TOKEN_REVOKED)
