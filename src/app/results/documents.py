"""The one way other domains read a session's current results document."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.sessions.models import TestSession


async def current_document(
    db: AsyncSession, organisation_id: uuid.UUID, session_id: uuid.UUID
) -> tuple[int, dict[str, Any]]:
    """``(version, document)`` of the session's merged results; ``(0, {})`` when it has none
    (or is not the organisation's)."""
    row = (
        await db.execute(
            select(TestSession.results_version, TestSession.results_document).where(
                TestSession.id == session_id, TestSession.organisation_id == organisation_id
            )
        )
    ).one_or_none()
    if row is None:
        return 0, {}
    return int(row.results_version), dict(row.results_document or {})
