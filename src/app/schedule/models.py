"""The schedule: routines per asset, their materialised occurrences, and what sessions cover.

Occurrences are materialised (one row per scheduled date) so that the due lists of an
organisation with tens of thousands of assets are one index range scan; they are kept in
step with assets, baselines and completed sessions by ``schedule.service``.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from src.app.buildings.models import Asset
from src.app.core.database import Base, IdentifiedMixin, UTCDateTime


class AssetBaseline(IdentifiedMixin, Base):
    """An admin-set baseline for every routine of an asset (a routine may override it)."""

    __tablename__ = "asset_baselines"

    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    asset_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("assets.id", ondelete="CASCADE"), unique=True
    )
    baseline_on: Mapped[date]


class ScheduleRoutine(IdentifiedMixin, Base):
    """One rule of the catalogue applied to one asset."""

    __tablename__ = "schedule_routines"
    __table_args__ = (UniqueConstraint("asset_id", "rule_code"),)

    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    asset_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"))
    rule_code: Mapped[str] = mapped_column(String(64))
    frequency: Mapped[str] = mapped_column(String(32))
    # Set by an admin for this routine only; wins over the asset's baseline.
    baseline_on: Mapped[date | None] = mapped_column(default=None)
    # What the occurrences were computed from (routine, asset, installed_on, first service).
    effective_baseline_on: Mapped[date | None] = mapped_column(default=None)
    baseline_source: Mapped[str | None] = mapped_column(String(16), default=None)
    # Occurrences exist up to this day; later ones are added as the horizon moves.
    materialised_until: Mapped[date | None] = mapped_column(default=None)


class ScheduleOccurrence(IdentifiedMixin, Base):
    """The n-th scheduled date of a routine, and the service that satisfied it."""

    __tablename__ = "schedule_occurrences"
    __table_args__ = (UniqueConstraint("routine_id", "seq"),)

    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    # Copied from the asset (kept in step when it moves), so lists filter without a join.
    building_id: Mapped[uuid.UUID] = mapped_column()
    asset_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"))
    routine_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("schedule_routines.id", ondelete="CASCADE")
    )
    rule_code: Mapped[str] = mapped_column(String(64))
    frequency: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(Integer)
    due_on: Mapped[date]
    window_start: Mapped[date]
    window_end: Mapped[date]
    done_on: Mapped[date | None] = mapped_column(default=None)
    # No foreign key: a session is never deleted while its building exists, and the row
    # must not block anything in the sessions domain.
    done_session_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    outcome: Mapped[str | None] = mapped_column(String(20), default=None)
    # When the out-of-tolerance event was written (or the occurrence was already out of
    # tolerance when it was first materialised, which is not news).
    out_of_tolerance_noted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class SessionRoutine(Base):
    """A routine a test session is planned to cover (declared when it is created)."""

    __tablename__ = "session_routines"

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("test_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    asset_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True
    )
    rule_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))


# The due lists: organisation, optional building, then the order (due_on, id ascending),
# so a page is one index range scan. The partial index holds only open occurrences, which
# the due / overdue lists read, skipping the done history.
Index(
    "ix_schedule_occurrences_organisation_id_due_on_id",
    ScheduleOccurrence.organisation_id,
    ScheduleOccurrence.due_on,
    ScheduleOccurrence.id,
)
Index(
    "ix_schedule_occurrences_organisation_id_building_id_due_on_id",
    ScheduleOccurrence.organisation_id,
    ScheduleOccurrence.building_id,
    ScheduleOccurrence.due_on,
    ScheduleOccurrence.id,
)
OPEN_OCCURRENCE = text("done_on IS NULL")
Index(
    "ix_schedule_occurrences_open_organisation_id_due_on_id",
    ScheduleOccurrence.organisation_id,
    ScheduleOccurrence.due_on,
    ScheduleOccurrence.id,
    postgresql_where=OPEN_OCCURRENCE,
    sqlite_where=OPEN_OCCURRENCE,
)
Index("ix_schedule_occurrences_asset_id", ScheduleOccurrence.asset_id)
# The sweep: open occurrences whose window ended and whose event is not written yet.
UNNOTED_OPEN = text("done_on IS NULL AND out_of_tolerance_noted_at IS NULL")
Index(
    "ix_schedule_occurrences_unnoted_window_end",
    ScheduleOccurrence.window_end,
    postgresql_where=UNNOTED_OPEN,
    sqlite_where=UNNOTED_OPEN,
)
Index(
    "ix_schedule_routines_organisation_id_materialised_until",
    ScheduleRoutine.organisation_id,
    ScheduleRoutine.materialised_until,
)
Index("ix_session_routines_asset_id", SessionRoutine.asset_id)
# The offline bundle's ETag: a building's high-water marks by backward index look-ups
# (and the asset count by an index-only scan), without reading the rows.
Index(
    "ix_schedule_occurrences_building_id_updated_at",
    ScheduleOccurrence.building_id,
    ScheduleOccurrence.updated_at,
)
Index("ix_assets_building_id_updated_at", Asset.building_id, Asset.updated_at)
