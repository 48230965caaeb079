"""Test sessions: one visit to a building to service its equipment."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from src.app.core.database import Base, IdentifiedMixin


class SessionStatus(StrEnum):
    draft = "draft"
    scheduled = "scheduled"
    in_progress = "in_progress"
    completed = "completed"


class TestSession(IdentifiedMixin, Base):
    __tablename__ = "test_sessions"
    __test__ = False  # not a pytest test class, despite the name
    __table_args__ = (
        CheckConstraint(
            "status IN ('draft', 'scheduled', 'in_progress', 'completed')", name="status_valid"
        ),
    )

    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    # Null only for a session that results sync created before the device created it.
    building_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("buildings.id"), default=None)
    session_name: Mapped[str] = mapped_column(String(200), default="")
    frequency: Mapped[str | None] = mapped_column(String(32), default=None)
    scheduled_for: Mapped[date | None] = mapped_column(default=None)
    status: Mapped[str] = mapped_column(String(16), default=SessionStatus.draft.value)
    # When it moved to in_progress (the rule versions published by then apply to it) and
    # to completed. Null before that, and for sessions that moved before these existed.
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )


# Keyset pagination indexes (organisation, equality filter, created_at DESC, id DESC): a page
# is one index range scan with no sort. The plain one also serves the repeatable ``status``
# filter (an IN-list cannot walk the status index in created_at order) and the
# ``scheduled_for`` range filters, both as filters on that ordered scan.
Index(
    "ix_test_sessions_organisation_id_created_at_id",
    TestSession.organisation_id,
    TestSession.created_at.desc(),
    TestSession.id.desc(),
)
Index(
    "ix_test_sessions_organisation_id_status_created_at_id",
    TestSession.organisation_id,
    TestSession.status,
    TestSession.created_at.desc(),
    TestSession.id.desc(),
)
Index(
    "ix_test_sessions_organisation_id_building_id_created_at_id",
    TestSession.organisation_id,
    TestSession.building_id,
    TestSession.created_at.desc(),
    TestSession.id.desc(),
)
# Sessions of a building: the delete check, and the foreign key's own look-up.
Index("ix_test_sessions_building_id", TestSession.building_id)
