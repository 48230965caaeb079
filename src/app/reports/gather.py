"""Gathering a report's facts from the database (the only I/O of a report).

Each kind of fact has its own function, so that its source can change without touching
the layout: routine occurrences come from the building's test sessions until the
schedule domain provides per-asset routines; defects come from the defects domain.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import cast

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.buildings.models import Asset, Building
from src.app.core.audit_model import AuditEntry
from src.app.defects.models import Defect as DefectRow
from src.app.defects.models import DefectEvent as DefectHistory
from src.app.identity.models import Organisation
from src.app.reports.facts import (
    OPEN_DEFECT_STATES,
    Defect,
    DefectClass,
    DefectEvent,
    Occurrence,
    ReportFacts,
    System,
)
from src.app.reports.layout import classify
from src.app.reports.windows import tolerance_window
from src.app.rules.frequency import Frequency
from src.app.sessions.models import SessionStatus, TestSession

REPORTED_CLASSES = ("critical", "non_critical", "non_conformance")


@dataclass(frozen=True, slots=True)
class Period:
    start: date
    end: date


async def gather_systems(db: AsyncSession, building: Building) -> tuple[System, ...]:
    """The building's systems: its asset types, with how many assets each."""
    rows = await db.execute(
        select(Asset.asset_type, func.count())
        .where(Asset.organisation_id == building.organisation_id, Asset.building_id == building.id)
        .group_by(Asset.asset_type)
        .order_by(Asset.asset_type)
    )
    return tuple(System(asset_type, int(count)) for asset_type, count in rows)


async def _completion_days(db: AsyncSession, building: Building, ids: list[str]) -> dict[str, date]:
    """When each session was completed, as the audit trail recorded it."""
    if not ids:
        return {}
    rows = await db.execute(
        select(AuditEntry.subject_id, AuditEntry.payload, AuditEntry.created_at).where(
            AuditEntry.organisation_id == building.organisation_id,
            AuditEntry.action == "test_session.status_changed",
            AuditEntry.subject_type == "test_session",
            AuditEntry.subject_id.in_(ids),
        )
    )
    done: dict[str, date] = {}
    for subject_id, payload, created_at in rows:
        if payload.get("to") == SessionStatus.completed.value:
            day = created_at.date()
            done[subject_id] = min(day, done.get(subject_id, day))
    return done


async def gather_occurrences(
    db: AsyncSession, building: Building, systems: tuple[System, ...], period: Period
) -> tuple[Occurrence, ...]:
    """Routine occurrences due in the period, judged at its end.

    Source until the schedule domain lands: each test session of the building with a
    frequency and a scheduled day in the period is one routine visit of every system of
    the building; it was done on the day the audit trail recorded its completion.
    """
    sessions = (
        await db.execute(
            select(
                TestSession.id,
                TestSession.session_name,
                TestSession.frequency,
                TestSession.scheduled_for,
                TestSession.status,
                TestSession.updated_at,
            )
            .where(
                TestSession.organisation_id == building.organisation_id,
                TestSession.building_id == building.id,
                TestSession.frequency.is_not(None),
                TestSession.scheduled_for >= period.start,
                TestSession.scheduled_for <= period.end,
            )
            .order_by(TestSession.scheduled_for, TestSession.id)
        )
    ).all()
    done = await _completion_days(db, building, [str(s.id) for s in sessions])
    occurrences: list[Occurrence] = []
    for s in sessions:
        frequency = Frequency(s.frequency)
        start, end = tolerance_window(s.scheduled_for, frequency)
        done_on = done.get(str(s.id))
        if done_on is None and s.status == SessionStatus.completed.value:
            done_on = s.updated_at.date()  # completed before the audit trail existed
        status = classify(
            due_on=s.scheduled_for,
            window_start=start,
            window_end=end,
            done_on=done_on,
            as_of=period.end,
        )
        reference = f"{s.session_name or 'session'} ({str(s.id)[:8]})"
        for system in systems:
            occurrences.append(
                Occurrence(
                    system=system.system,
                    routine=frequency.value,
                    due_on=s.scheduled_for,
                    window_start=start,
                    window_end=end,
                    done_on=done_on if status != "missed" and status != "open" else None,
                    assets=system.assets,
                    reference=reference,
                    status=status,
                )
            )
    return tuple(occurrences)


async def gather_defects(
    db: AsyncSession, building: Building, period: Period
) -> tuple[Defect, ...]:
    """The building's defects of the three AS 1851 classes raised by the end of the
    period, either in the period or still open: with their current status and their
    history (the layout picks what the report lists)."""
    raised_by_end = DefectRow.created_at < _midnight(period.end + timedelta(days=1))
    rows = (
        await db.execute(
            select(DefectRow, Asset.asset_type, Asset.barcode, Asset.location)
            .outerjoin(Asset, Asset.id == DefectRow.asset_id)
            .where(
                DefectRow.organisation_id == building.organisation_id,
                DefectRow.building_id == building.id,
                DefectRow.severity.in_(REPORTED_CLASSES),
                raised_by_end,
                or_(
                    DefectRow.created_at >= _midnight(period.start),
                    DefectRow.status.in_(OPEN_DEFECT_STATES),
                ),
            )
            .order_by(DefectRow.created_at, DefectRow.id)
        )
    ).all()
    ids = [row[0].id for row in rows]
    history: dict[uuid.UUID, list[DefectEvent]] = {}
    if ids:
        events = await db.execute(
            select(
                DefectHistory.defect_id,
                DefectHistory.to_status,
                DefectHistory.from_status,
                DefectHistory.created_at,
            )
            .where(DefectHistory.defect_id.in_(ids))
            .order_by(DefectHistory.created_at, DefectHistory.id)
        )
        for defect_id, to_status, from_status, created_at in events:
            if from_status != to_status:  # edits are not state changes
                history.setdefault(defect_id, []).append(DefectEvent(created_at.date(), to_status))
    return tuple(
        Defect(
            id=str(row.id),
            system=asset_type or "building",
            asset=barcode or location or "-",
            defect_class=cast(DefectClass, row.severity),
            status=row.status,
            description=row.remark,
            raised_on=row.created_at.date(),
            events=tuple(history.get(row.id, ())),
        )
        for row, asset_type, barcode, location in rows
    )


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


async def gather_facts(db: AsyncSession, building: Building, period: Period) -> ReportFacts:
    organisation = await db.get(Organisation, building.organisation_id)
    assert organisation is not None
    systems = await gather_systems(db, building)
    return ReportFacts(
        organisation_name=organisation.name,
        building_name=building.name,
        building_address=building.address,
        systems=systems,
        occurrences=await gather_occurrences(db, building, systems, period),
        defects=await gather_defects(db, building, period),
    )
