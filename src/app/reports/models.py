"""Yearly condition reports: immutable once created, rendered again from their facts."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from src.app.core.clock import utc_now
from src.app.core.database import Base, UTCDateTime


class ConditionReport(Base):
    __tablename__ = "condition_reports"

    # Derived from what the report is built from (see reports/service.py): the same
    # building, period, statement, audit position and facts give the same report.
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    building_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("buildings.id"))
    period_start: Mapped[date]
    period_end: Mapped[date]
    accords_with_design: Mapped[bool] = mapped_column(Boolean)
    statement: Mapped[str] = mapped_column(Text)
    responsible_person: Mapped[str] = mapped_column(String(200))
    licence_number: Mapped[str] = mapped_column(String(100))
    audit_position: Mapped[int] = mapped_column(BigInteger)
    audit_hash: Mapped[str] = mapped_column(String(64))
    facts: Mapped[dict[str, Any]]
    facts_sha256: Mapped[str] = mapped_column(String(64))
    generated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)


Index(
    "ix_condition_reports_organisation_id_building_id_created_at_id",
    ConditionReport.organisation_id,
    ConditionReport.building_id,
    ConditionReport.created_at.desc(),
    ConditionReport.id.desc(),
)
