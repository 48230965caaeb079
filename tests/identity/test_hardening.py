"""Smaller identity guarantees: the purge keeps a revocation while its token is still
accepted (the decode leeway), revocations reach Redis in one round trip per batch, and
the refresh-token successor look-up has its index."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import inspect, select

from src.app.core.clock import utc_now
from src.app.identity.models import RevokedToken, User
from src.app.identity.revocation import RevocationChecker
from src.app.identity.tokens import issue_access_token
from src.app.maintenance import purge_expired
from tests.identity.conftest import REDIS_URL, client_for, redis_prefix


async def test_purge_keeps_a_revocation_until_the_leeway_has_passed(app, make_tenant) -> None:
    tenant = await make_tenant()
    settings = app.state.settings
    viewer = tenant.viewer
    # A token that expired 2 s ago: the decoder still accepts it (10 s leeway).
    issued = issue_access_token(
        settings,
        user_id=viewer.id,
        organisation_id=viewer.organisation_id,
        role=viewer.role.value,
        now=utc_now() - timedelta(seconds=settings.access_token_ttl_seconds + 2),
    )
    headers = {"Authorization": f"Bearer {issued.token}"}
    async with client_for(app) as client:
        assert (await client.get("/v1/users/me", headers=headers)).status_code == 200
        assert (await client.post("/v1/auth/logout", headers=headers)).status_code == 204
        async with app.state.database.sessionmaker() as db:
            await purge_expired(db, settings, utc_now())
            assert await _revocation_exists(db, issued.claims.jti)
        refused = await client.get("/v1/users/me", headers=headers)
    assert refused.status_code == 401
    assert refused.json()["detail"] == "The access token has been revoked"
    # Once the token is past its expiry plus the leeway, the purge may take the record.
    past_leeway = issued.claims.expires_at + timedelta(seconds=settings.jwt_leeway_seconds + 1)
    async with app.state.database.sessionmaker() as db:
        await purge_expired(db, settings, past_leeway)
        assert not await _revocation_exists(db, issued.claims.jti)


async def _revocation_exists(db: Any, jti: str) -> bool:
    found = await db.execute(select(RevokedToken.id).where(RevokedToken.jti == jti))
    return found.first() is not None


class _CountingStore:
    """Wraps a RedisStore and counts round trips (calls of ``run``)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def run(self, operation: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return await self.store.run(operation, **kwargs)


async def test_one_redis_round_trip_per_revocation_batch(make_app, make_tenant, redis_client):
    app = make_app(redis_url=REDIS_URL, redis_key_prefix=redis_prefix())
    tenant = await make_tenant()
    checker: RevocationChecker = app.state.revocation_checker
    counting = _CountingStore(checker.redis)
    checker.redis = counting  # type: ignore[assignment]
    expires = utc_now() + timedelta(minutes=10)
    jtis = [f"batch-{uuid.uuid4().hex}" for _ in range(25)]
    async with app.state.database.sessionmaker() as db:
        users = [await db.get(User, person.id) for person in (tenant.admin, tenant.viewer)]
    await checker.publish(tokens=[(jti, expires) for jti in jtis], users=users)
    assert counting.calls == 1
    for jti in jtis:
        ttl = await redis_client.pttl(counting.key("rtl", "jti", jti))
        assert 600_000 < ttl <= 610_000 + 1_000  # its expiry plus the 10 s leeway
    for person in (tenant.admin, tenant.viewer):
        assert await redis_client.exists(counting.key("rtl", "user", str(person.id))) == 1
    # An empty batch costs nothing.
    await checker.publish(tokens=[], users=[])
    assert counting.calls == 1


async def test_the_successor_lookup_is_indexed(app) -> None:
    async with app.state.database.engine.connect() as conn:
        indexes = await conn.run_sync(lambda sync: inspect(sync).get_indexes("refresh_tokens"))
    assert {"name": "ix_refresh_tokens_parent_id", "columns": ["parent_id"]} in [
        {"name": index["name"], "columns": index["column_names"]} for index in indexes
    ]
