"""The revocation check every authenticated request passes through (Task 1.2)."""

from __future__ import annotations

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.identity.models import RevokedToken, User
from src.app.identity.tokens import AccessClaims


class RevocationChecker:
    """Database-backed check: the RTL by ``jti``, the user's active flag and revoke-all time."""

    async def refusal(self, session: AsyncSession, claims: AccessClaims) -> str | None:
        """Why the token must be refused, or None when it may pass."""
        revoked = await session.execute(
            select(RevokedToken.id).where(RevokedToken.jti == claims.jti)
        )
        if revoked.first() is not None:
            return "The access token has been revoked"
        user = await session.get(User, claims.user_id)
        if user is None or user.organisation_id != claims.organisation_id:
            return "The access token's user does not exist"
        if not user.is_active:
            return "The user is deactivated"
        # iat has one-second resolution: a token issued in the same second as the
        # revoke-all is refused (the revoke time is truncated to the second before compare).
        if user.tokens_valid_after is not None and claims.issued_at <= user.tokens_valid_after:
            return "The access token was revoked (all of the user's tokens were revoked)"
        return None


_default_checker = RevocationChecker()


def get_revocation_checker(request: Request) -> RevocationChecker:
    checker: RevocationChecker = getattr(request.app.state, "revocation_checker", _default_checker)
    return checker
