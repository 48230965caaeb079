"""The refresh retry grace: a client that lost the response to a refresh and retries with
the same token within FIREMODE_REFRESH_REUSE_GRACE_SECONDS gets a new pair (the unused one
it lost is revoked) instead of losing its session; outside the grace, or once the
successor was used, it is theft detection."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select, update

from src.app.core.clock import utc_now
from src.app.core.settings import Settings
from src.app.identity.models import RefreshToken
from src.app.identity.revocation import TOKEN_REVOKED
from src.app.identity.tokens import hash_refresh_token
from tests.identity.conftest import Tokens, assert_401, client_for, login

ME = "/v1/users/me"
INVALID_REFRESH = "The refresh token is invalid, expired or revoked"
REUSED = "The refresh token was already used; its session has been revoked. Log in again"


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/v1/auth/refresh", json={"refresh_token": token})


def pair(response: httpx.Response) -> Tokens:
    assert response.status_code == 200, response.text
    return Tokens(response.json()["access_token"], response.json()["refresh_token"])


async def rows_by_token(app, *tokens: Tokens) -> list[RefreshToken]:
    async with app.state.database.sessionmaker() as session:
        found = {
            row.token_hash: row
            for row in (
                await session.execute(
                    select(RefreshToken).where(
                        RefreshToken.token_hash.in_([hash_refresh_token(t.refresh) for t in tokens])
                    )
                )
            ).scalars()
        }
    return [found[hash_refresh_token(t.refresh)] for t in tokens]


async def move_first_use_back(app, token: Tokens, seconds: float) -> None:
    """Pretend the token was rotated ``seconds`` ago (instead of sleeping)."""
    async with app.state.database.sessionmaker() as session:
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.token_hash == hash_refresh_token(token.refresh))
            .values(used_at=utc_now() - timedelta(seconds=seconds))
        )
        await session.commit()


async def test_a_retry_within_the_grace_gets_a_new_pair_and_the_lost_one_is_revoked(
    http: httpx.AsyncClient, make_tenant, app
):
    tenant = await make_tenant()
    first = await login(http, tenant.technician.email)
    lost = pair(await refresh(http, first.refresh))  # the client never sees this answer
    retried = pair(await refresh(http, first.refresh))
    assert retried.refresh != lost.refresh and retried.access != lost.access
    assert (await http.get(ME, headers=retried.headers)).status_code == 200
    # The pair the client lost is revoked, access token included.
    assert_401(await http.get(ME, headers=lost.headers), TOKEN_REVOKED)
    # A second retry (that answer lost too) replaces the second successor the same way.
    again = pair(await refresh(http, first.refresh))
    assert_401(await http.get(ME, headers=retried.headers), TOKEN_REVOKED)
    root, lost_row, retried_row, again_row = await rows_by_token(app, first, lost, retried, again)
    assert lost_row.parent_id == retried_row.parent_id == again_row.parent_id == root.id
    assert lost_row.family_id == again_row.family_id == root.family_id
    assert lost_row.revoked_at is not None and lost_row.used_at is None
    assert retried_row.revoked_at is not None and retried_row.used_at is None
    assert again_row.revoked_at is None and again_row.used_at is None
    # The session goes on from the newest pair.
    later = pair(await refresh(http, again.refresh))
    assert (await http.get(ME, headers=later.headers)).status_code == 200
    listed = await http.get(
        "/v1/auth/revocations",
        params={"user_id": str(tenant.technician.id)},
        headers=tenant.admin.headers,
    )
    reasons = [row["reason"] for row in listed.json()["data"]]
    assert reasons == ["refresh retried: unused successor replaced"] * 2


async def test_presenting_the_replaced_successor_is_reuse(http: httpx.AsyncClient, make_tenant):
    """The client that retried never received the successor: whoever presents it did, so
    two parties hold the session and the family is revoked."""
    tenant = await make_tenant()
    first = await login(http, tenant.viewer.email)
    lost = pair(await refresh(http, first.refresh))
    retried = pair(await refresh(http, first.refresh))
    assert_401(await refresh(http, lost.refresh), REUSED)
    assert_401(await refresh(http, retried.refresh), INVALID_REFRESH)
    assert_401(await http.get(ME, headers=retried.headers), TOKEN_REVOKED)


@pytest.mark.parametrize(("seconds_ago", "is_retry"), [(29, True), (31, False)])
async def test_the_grace_interval_boundary(
    http: httpx.AsyncClient, make_tenant, app, seconds_ago: int, is_retry: bool
):
    tenant = await make_tenant()
    first = await login(http, tenant.technician.email)
    successor = pair(await refresh(http, first.refresh))
    await move_first_use_back(app, first, seconds_ago)
    response = await refresh(http, first.refresh)
    if is_retry:
        assert (await http.get(ME, headers=pair(response).headers)).status_code == 200
        assert_401(await http.get(ME, headers=successor.headers), TOKEN_REVOKED)
    else:
        # Outside the 30-second grace: theft detection, the whole family is revoked.
        assert_401(response, REUSED)
        assert_401(await refresh(http, successor.refresh), INVALID_REFRESH)
        assert_401(await http.get(ME, headers=successor.headers), TOKEN_REVOKED)


async def test_a_retry_after_the_successor_was_used_is_reuse(http: httpx.AsyncClient, make_tenant):
    tenant = await make_tenant()
    first = await login(http, tenant.admin.email)
    second = pair(await refresh(http, first.refresh))
    third = pair(await refresh(http, second.refresh))
    assert_401(await refresh(http, first.refresh), REUSED)
    assert_401(await refresh(http, third.refresh), INVALID_REFRESH)
    assert_401(await http.get(ME, headers=third.headers), TOKEN_REVOKED)


async def test_a_grace_of_zero_disables_it(make_app, make_tenant):
    server = make_app(refresh_reuse_grace_seconds=0)
    tenant = await make_tenant()
    async with client_for(server) as client:
        first = await login(client, tenant.viewer.email)
        successor = pair(await refresh(client, first.refresh))
        assert_401(await refresh(client, first.refresh), REUSED)
        assert_401(await client.get(ME, headers=successor.headers), TOKEN_REVOKED)


def test_the_grace_setting():
    assert Settings().refresh_reuse_grace_seconds == 30
    with pytest.raises(ValidationError):
        Settings(refresh_reuse_grace_seconds=-1)
