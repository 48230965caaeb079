"""Housekeeping that keeps the revocation list, refresh tokens, throttling state and
idempotency records small: everything past its own expiry is deleted. Evidence past its
retention period goes too, with blobs and files nothing references (evidence/retention.py).

A revocation outlives its ``expires_at`` by the token decoder's leeway
(``FIREMODE_JWT_LEEWAY_SECONDS``): the token it refuses is still accepted that long."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.core.idempotency_model import IdempotencyRecord
from src.app.core.settings import Settings
from src.app.evidence.retention import purge_evidence
from src.app.evidence.storage import build_store
from src.app.identity.models import LoginFailure, LoginKnownAddress, RefreshToken, RevokedToken


async def purge_expired(db: AsyncSession, settings: Settings, now: datetime) -> dict[str, int]:
    """Delete expired rows; returns how many of each kind went. Commits."""
    window_start = now - timedelta(seconds=settings.login_window_seconds)
    refuses_nothing_before = now - timedelta(seconds=settings.jwt_leeway_seconds)
    known_since = now - timedelta(days=settings.login_known_address_days)
    statements = {
        "revoked_tokens": delete(RevokedToken).where(
            RevokedToken.expires_at < refuses_nothing_before
        ),
        "refresh_tokens": delete(RefreshToken).where(RefreshToken.expires_at < now),
        "login_failures": delete(LoginFailure).where(LoginFailure.created_at < window_start),
        "login_known_addresses": delete(LoginKnownAddress).where(
            LoginKnownAddress.updated_at < known_since
        ),
        "idempotency_records": delete(IdempotencyRecord).where(IdempotencyRecord.expires_at < now),
    }
    counts: dict[str, int] = {}
    for name, statement in statements.items():
        result = await db.execute(statement)
        counts[name] = int(getattr(result, "rowcount", 0) or 0)
    await db.commit()
    counts.update(
        await purge_evidence(db=db, store=build_store(settings), settings=settings, now=now)
    )
    return counts
