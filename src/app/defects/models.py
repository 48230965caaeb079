"""Defects, their history, and each organisation's response deadlines."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from src.app.core.clock import utc_now
from src.app.core.database import Base, IdentifiedMixin, JSONType, UTCDateTime

_STATUSES = (
    "open",
    "acknowledged",
    "quoted",
    "repair_scheduled",
    "repaired",
    "verified",
    "closed",
    "cancelled",
)
_SEVERITIES = ("critical", "non_critical", "non_conformance", "recommendation", "informational")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Defect(IdentifiedMixin, Base):
    __tablename__ = "defects"
    __table_args__ = (
        CheckConstraint(_one_of("status", _STATUSES), name="status_valid"),
        CheckConstraint(_one_of("severity", _SEVERITIES), name="severity_valid"),
    )

    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    building_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("buildings.id"))
    asset_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("assets.id"), default=None)
    session_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("test_sessions.id"), default=None
    )
    # The rule version and checklist item that raised it (null when raised by hand
    # without one).
    rule_version_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("rule_versions.id"), default=None
    )
    rule_code: Mapped[str | None] = mapped_column(String(64), default=None)
    rule_version: Mapped[str | None] = mapped_column(String(32), default=None)
    item_key: Mapped[str | None] = mapped_column(String(64), default=None)
    severity: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32), default="open")
    remark: Mapped[str] = mapped_column(Text)
    # Extension point for photos before and after: evidence ids, once evidence exists.
    evidence_ids: Mapped[list[str]] = mapped_column(JSONType, default=list)
    source: Mapped[str] = mapped_column(String(16))  # "evaluation" or "manual"
    raised_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    # Fixed when raised, from the organisation's deadline for the severity; null: none.
    response_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    overdue_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    cancel_reason: Mapped[str | None] = mapped_column(Text, default=None)
    # What raised it automatically (session, asset, rule, item): unique, so a session's
    # evaluation can never raise the same defect twice. Null for defects raised by hand.
    origin_key: Mapped[str | None] = mapped_column(String(300), unique=True, default=None)


class DefectEvent(Base):
    """One entry of a defect's history: raised, a status change, or an edit."""

    __tablename__ = "defect_history"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    defect_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("defects.id", ondelete="CASCADE"))
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    from_status: Mapped[str | None] = mapped_column(String(32), default=None)
    to_status: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text, default="")
    changes: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)


class DefectDeadline(Base):
    """An organisation's response deadline for one severity (no row: the default)."""

    __tablename__ = "defect_deadlines"

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id"), primary_key=True
    )
    severity: Mapped[str] = mapped_column(String(32), primary_key=True)
    # Null: no deadline for this severity.
    response_hours: Mapped[int | None] = mapped_column(Integer, default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now, onupdate=utc_now)


# GET /v1/defects: newest first, one index per equality filter (organisation first).
Index(
    "ix_defects_organisation_id_created_at_id",
    Defect.organisation_id,
    Defect.created_at.desc(),
    Defect.id.desc(),
)
for _column in ("building_id", "asset_id", "session_id", "status", "severity"):
    Index(
        f"ix_defects_organisation_id_{_column}_created_at_id",
        Defect.organisation_id,
        getattr(Defect, _column),
        Defect.created_at.desc(),
        Defect.id.desc(),
    )
# The worker's overdue sweep: open defects by deadline.
Index("ix_defects_status_response_due_at", Defect.status, Defect.response_due_at)
Index("ix_defect_history_defect_id_created_at", DefectEvent.defect_id, DefectEvent.created_at)
