"""Housekeeping that keeps the revocation list, refresh tokens, throttling state and
idempotency records small: everything past its own expiry is deleted."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.core.idempotency_model import IdempotencyRecord
from src.app.core.settings import Settings
from src.app.identity.models import LoginFailure, RefreshToken, RevokedToken


async def purge_expired(db: AsyncSession, settings: Settings, now: datetime) -> dict[str, int]:
    """Delete expired rows; returns how many of each kind went. Commits."""
    window_start = now - timedelta(seconds=settings.login_window_seconds)
    statements = {
        "revoked_tokens": delete(RevokedToken).where(RevokedToken.expires_at < now),
        "refresh_tokens": delete(RefreshToken).where(RefreshToken.expires_at < now),
        "login_failures": delete(LoginFailure).where(LoginFailure.created_at < window_start),
        "idempotency_records": delete(IdempotencyRecord).where(IdempotencyRecord.expires_at < now),
    }
    counts: dict[str, int] = {}
    for name, statement in statements.items():
        result = await db.execute(statement)
        counts[name] = int(getattr(result, "rowcount", 0) or 0)
    await db.commit()
    return counts
