"""The revocation check with Redis: write-through, Redis first, resync from the database,
fallback to the database when Redis fails, and 503 (never a pass) when neither answers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from sqlalchemy import delete, update

from src.app.core.settings import Settings, SettingsError
from src.app.identity.models import RevokedToken, User
from src.app.identity.revocation import (
    ALL_REVOKED,
    TOKEN_REVOKED,
    USER_DEACTIVATED,
    UserState,
    decode_user_state,
    encode_user_state,
    refusal_reason,
)
from src.app.identity.tokens import issue_access_token
from src.app.main import create_app
from tests.conftest import TEST_SECRET
from tests.identity.conftest import (
    REDIS_URL,
    assert_401,
    client_for,
    closed_port,
    login,
    redis_prefix,
)

ME = "/v1/users/me"


def redis_app(make_app, **overrides):
    return make_app(redis_url=REDIS_URL, redis_key_prefix=redis_prefix(), **overrides)


def jti_of(token: str) -> str:
    claims = jwt.decode(token, TEST_SECRET, algorithms=["HS256"], audience="firemode-api")
    return str(claims["jti"])


async def test_logout_is_written_through_and_redis_is_asked_first(
    make_app, make_tenant, redis_client, app
):
    server = redis_app(make_app)
    store = server.state.revocation_checker.redis
    tenant = await make_tenant()
    async with client_for(server) as client:
        tokens = await login(client, tenant.technician.email)
        assert (await client.get(ME, headers=tokens.headers)).status_code == 200
        # The first check found Redis unsynced, answered from the database, and resynced.
        assert await redis_client.exists(store.key("rtl", "synced")) == 1
        assert (await client.post("/v1/auth/logout", headers=tokens.headers)).status_code == 204
        jti = jti_of(tokens.access)
        key = store.key("rtl", "jti", jti)
        assert await redis_client.get(key) == "1"
        # Expires with the token (15 minutes plus the 10-second leeway).
        assert 880_000 < await redis_client.pttl(key) <= 910_000
        # Take the revocation out of the database: Redis alone still refuses the token.
        async with app.state.database.sessionmaker() as session:
            await session.execute(delete(RevokedToken).where(RevokedToken.jti == jti))
            await session.commit()
        assert_401(await client.get(ME, headers=tokens.headers), TOKEN_REVOKED)


async def test_deactivation_and_revoke_all_are_written_through(
    make_app, make_tenant, redis_client, app
):
    server = redis_app(make_app)
    store = server.state.revocation_checker.redis
    tenant = await make_tenant()
    async with client_for(server) as client:
        tech = await login(client, tenant.technician.email)
        viewer = await login(client, tenant.viewer.email)
        assert (await client.get(ME, headers=tech.headers)).status_code == 200
        off = await client.patch(
            f"/v1/users/{tenant.technician.id}",
            json={"is_active": False},
            headers=tenant.admin.headers,
        )
        assert off.status_code == 200
        state = decode_user_state(
            await redis_client.get(store.key("rtl", "user", str(tenant.technician.id)))
        )
        assert state is not None and state.is_active is False
        # Reactivate behind the API's back: Redis still says deactivated, and is asked first.
        async with app.state.database.sessionmaker() as session:
            await session.execute(
                update(User).where(User.id == tenant.technician.id).values(is_active=True)
            )
            await session.commit()
        assert_401(await client.get(ME, headers=tech.headers), USER_DEACTIVATED)

        revoked = await client.post(
            "/v1/auth/revocations",
            json={"user_id": str(tenant.viewer.id)},
            headers=tenant.admin.headers,
        )
        assert revoked.status_code == 201
        raw = await redis_client.get(store.key("rtl", "user", str(tenant.viewer.id)))
        state = decode_user_state(raw)
        assert state is not None and state.is_active is True
        assert state.tokens_valid_after is not None
        assert_401(await client.get(ME, headers=viewer.headers), ALL_REVOKED)
        # Kept for one access-token lifetime (plus leeway and margin), then useless.
        ttl = await redis_client.pttl(store.key("rtl", "user", str(tenant.viewer.id)))
        assert 960_000 < ttl <= 970_000
        again = await login(client, tenant.viewer.email)
        assert (await client.get(ME, headers=again.headers)).status_code == 200


async def test_a_revocation_made_without_redis_is_loaded_by_the_resync(
    make_app, make_tenant, redis_client, http
):
    tenant = await make_tenant()
    tokens = await login(http, tenant.viewer.email)
    # Revoked through the app without Redis: only the database knows.
    assert (await http.post("/v1/auth/logout", headers=tokens.headers)).status_code == 204
    server = redis_app(make_app)
    store = server.state.revocation_checker.redis
    async with client_for(server) as client:
        assert_401(await client.get(ME, headers=tokens.headers), TOKEN_REVOKED)
    assert await redis_client.get(store.key("rtl", "jti", jti_of(tokens.access))) == "1"
    assert await redis_client.exists(store.key("rtl", "synced")) == 1


async def test_a_lost_write_heals_within_one_resync_interval(
    make_app, make_tenant, redis_client, http
):
    server = redis_app(make_app, redis_resync_seconds=1)
    store = server.state.revocation_checker.redis
    tenant = await make_tenant()
    async with client_for(server) as client:
        tokens = await login(client, tenant.technician.email)
        assert (await client.get(ME, headers=tokens.headers)).status_code == 200
        assert 0 < await redis_client.pttl(store.key("rtl", "synced")) <= 1000
        # Revoked where Redis never hears of it (the app without Redis).
        assert (await http.post("/v1/auth/logout", headers=tokens.headers)).status_code == 204
        # One resync interval later Redis drops the marker (its TTL is asserted above):
        # expiring it now stands in for waiting the interval out.
        await redis_client.delete(store.key("rtl", "synced"))
        assert_401(await client.get(ME, headers=tokens.headers), TOKEN_REVOKED)
        assert await redis_client.get(store.key("rtl", "jti", jti_of(tokens.access))) == "1"


async def test_two_apps_sharing_redis_see_a_revocation_at_once(make_app, make_tenant):
    prefix = redis_prefix()
    first = make_app(redis_url=REDIS_URL, redis_key_prefix=prefix)
    second = make_app(redis_url=REDIS_URL, redis_key_prefix=prefix)
    tenant = await make_tenant()
    async with client_for(first) as a, client_for(second) as b:
        tokens = await login(a, tenant.technician.email)
        assert (await b.get(ME, headers=tokens.headers)).status_code == 200
        assert (await a.post("/v1/auth/logout", headers=tokens.headers)).status_code == 204
        assert_401(await b.get(ME, headers=tokens.headers), TOKEN_REVOKED)


async def test_unreadable_redis_state_falls_back_to_the_database(
    make_app, make_tenant, redis_client
):
    server = redis_app(make_app)
    store = server.state.revocation_checker.redis
    tenant = await make_tenant()
    async with client_for(server) as client:
        assert (await client.get(ME, headers=tenant.viewer.headers)).status_code == 200
        await redis_client.set(store.key("rtl", "user", str(tenant.viewer.id)), "garbage")
        await redis_client.set(store.key("rtl", "user", str(tenant.technician.id)), "garbage")
        off = await client.patch(
            f"/v1/users/{tenant.technician.id}",
            json={"is_active": False},
            headers=tenant.admin.headers,
        )
        assert off.status_code == 200
        await redis_client.set(store.key("rtl", "user", str(tenant.technician.id)), "garbage")
        assert (await client.get(ME, headers=tenant.viewer.headers)).status_code == 200
        assert_401(await client.get(ME, headers=tenant.technician.headers), USER_DEACTIVATED)


async def test_redis_down_reads_fall_back_to_the_database(make_app, make_tenant, app):
    server = make_app(redis_url=f"redis://127.0.0.1:{closed_port()}/0", redis_retry_seconds=0)
    tenant = await make_tenant()
    async with client_for(server) as client:
        tokens = await login(client, tenant.technician.email)
        assert (await client.get(ME, headers=tokens.headers)).status_code == 200
        # A revocation made where Redis is not configured (the shared app): the database
        # path of the app whose Redis is down refuses it.
        async with client_for(app) as plain:
            assert (await plain.post("/v1/auth/logout", headers=tokens.headers)).status_code == 204
        assert_401(await client.get(ME, headers=tokens.headers), TOKEN_REVOKED)
        # Writes need Redis (see test_revocation_write_order.py): refused with 503.
        viewer = await login(client, tenant.viewer.email)
        revoked = await client.post(
            "/v1/auth/revocations",
            json={"user_id": str(tenant.viewer.id)},
            headers=tenant.admin.headers,
        )
        assert revoked.status_code == 503
        assert (await client.get(ME, headers=viewer.headers)).status_code == 200


def _token_for_nobody(settings) -> str:
    return issue_access_token(
        settings, user_id=uuid.uuid4(), organisation_id=uuid.uuid4(), role="admin"
    ).token


async def test_neither_redis_nor_database_answers_503(make_app):
    dead_database = f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port()}/nothing"
    for server in (
        make_app(database_url=dead_database, redis_url=f"redis://127.0.0.1:{closed_port()}/0"),
        make_app(database_url=dead_database),
    ):
        async with client_for(server) as client:
            response = await client.get(
                ME, headers={"Authorization": f"Bearer {_token_for_nobody(server.state.settings)}"}
            )
        assert response.status_code == 503
        body = response.json()
        assert body["error_code"] == "FIRE-503"
        assert body["retryable"] is True
        assert body["detail"] == "Cannot check the access token's revocation status right now"
        assert response.headers["retry-after"] == "1"


def test_refusal_reason_is_exact_to_the_microsecond():
    instant = datetime(2026, 12, 1, 12, 0, 0, 500_000, tzinfo=UTC)
    valid_after = UserState(is_active=True, tokens_valid_after=instant)
    micro = timedelta(microseconds=1)
    assert refusal_reason(jti_revoked=False, user=valid_after, issued_at=instant - micro) == (
        ALL_REVOKED
    )
    assert refusal_reason(jti_revoked=False, user=valid_after, issued_at=instant) == ALL_REVOKED
    assert refusal_reason(jti_revoked=False, user=valid_after, issued_at=instant + micro) is None
    assert refusal_reason(jti_revoked=True, user=None, issued_at=instant) == TOKEN_REVOKED
    inactive = UserState(is_active=False, tokens_valid_after=None)
    assert refusal_reason(jti_revoked=False, user=inactive, issued_at=instant) == USER_DEACTIVATED
    assert refusal_reason(jti_revoked=False, user=None, issued_at=instant) is None


def test_user_state_round_trip():
    instant = datetime(2026, 12, 1, 12, 0, 0, 123_456, tzinfo=UTC)
    for state in (
        UserState(True, None),
        UserState(False, instant),
        UserState(True, instant),
    ):
        assert decode_user_state(encode_user_state(instant, state)) == state
    assert decode_user_state(None) is None


def test_a_malformed_redis_url_stops_the_start():
    with pytest.raises(SettingsError, match="FIREMODE_REDIS_URL is not a Redis URL"):
        create_app(Settings(redis_url="localhost:6379"))
