"""`firemode maintenance purge` removes expired revocations, refresh tokens and failures."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select

from src.app.core.clock import utc_now
from src.app.identity.models import LoginFailure, RefreshToken, RevokedToken
from src.app.maintenance import purge_expired


async def test_purge_removes_only_what_has_expired(app, make_tenant):
    tenant = await make_tenant()
    now = utc_now()
    settings = app.state.settings
    user = (tenant.organisation_id, tenant.viewer.id)

    def revoked(expires_in: timedelta) -> RevokedToken:
        return RevokedToken(
            organisation_id=user[0],
            jti=str(uuid.uuid4()),
            user_id=user[1],
            expires_at=now + expires_in,
        )

    def refresh(expires_in: timedelta) -> RefreshToken:
        return RefreshToken(
            user_id=user[1],
            organisation_id=user[0],
            family_id=uuid.uuid4(),
            token_hash=uuid.uuid4().hex,
            expires_at=now + expires_in,
        )

    old_key, new_key = f"email:old-{uuid.uuid4().hex}", f"email:new-{uuid.uuid4().hex}"
    # A revocation refuses its token until the decode leeway has passed too.
    leeway = timedelta(seconds=settings.jwt_leeway_seconds)
    expired = [revoked(-leeway - timedelta(seconds=1)), refresh(-timedelta(seconds=1))]
    live = [revoked(timedelta(minutes=5)), refresh(timedelta(days=1))]
    failures = [
        LoginFailure(throttle_key=old_key, created_at=now - timedelta(seconds=901)),
        LoginFailure(throttle_key=new_key, created_at=now - timedelta(seconds=10)),
    ]
    async with app.state.database.sessionmaker() as session:
        session.add_all([*expired, *live, *failures])
        await session.commit()
        ids = {type(row).__name__ + str(row.id) for row in [*expired, *live, *failures]}
        counts = await purge_expired(session, settings, utc_now())
        assert counts["revoked_tokens"] >= 1
        assert counts["refresh_tokens"] >= 1
        assert counts["login_failures"] >= 1
        left = set()
        for model in (RevokedToken, RefreshToken, LoginFailure):
            rows = await session.execute(select(model.id))
            left |= {model.__name__ + str(row_id) for (row_id,) in rows}
    assert ids & left == {type(row).__name__ + str(row.id) for row in [*live, failures[1]]}
