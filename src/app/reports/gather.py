"""Gathering a report's facts from the database (the only I/O of a report).

Each kind of fact has its own function, so that its source can change without touching
the layout: routine occurrences come from the schedule domain, defects from the defects
domain.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import cast

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.buildings.models import Asset, Building
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
from src.app.schedule.models import ScheduleOccurrence

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


async def gather_occurrences(
    db: AsyncSession, building: Building, period: Period
) -> tuple[Occurrence, ...]:
    """The building's routine occurrences (from the schedule) due in the period, judged at
    its end, one line per system, routine and outcome: occurrences of several assets done
    the same day (or missed alike) make one line counting the assets."""
    rows = await db.execute(
        select(
            Asset.asset_type,
            ScheduleOccurrence.frequency,
            ScheduleOccurrence.rule_code,
            ScheduleOccurrence.due_on,
            ScheduleOccurrence.window_start,
            ScheduleOccurrence.window_end,
            ScheduleOccurrence.done_on,
            ScheduleOccurrence.done_session_id,
            func.count(),
        )
        .join(Asset, Asset.id == ScheduleOccurrence.asset_id)
        .where(
            ScheduleOccurrence.organisation_id == building.organisation_id,
            ScheduleOccurrence.building_id == building.id,
            ScheduleOccurrence.due_on >= period.start,
            ScheduleOccurrence.due_on <= period.end,
        )
        .group_by(
            Asset.asset_type,
            ScheduleOccurrence.frequency,
            ScheduleOccurrence.rule_code,
            ScheduleOccurrence.due_on,
            ScheduleOccurrence.window_start,
            ScheduleOccurrence.window_end,
            ScheduleOccurrence.done_on,
            ScheduleOccurrence.done_session_id,
        )
    )
    occurrences: list[Occurrence] = []
    for system, frequency, rule_code, due, start, end, done, session_id, count in rows:
        status = classify(
            due_on=due, window_start=start, window_end=end, done_on=done, as_of=period.end
        )
        counted_done = done if status not in ("missed", "open") else None
        reference = rule_code + (f", session {str(session_id)[:8]}" if counted_done else "")
        occurrences.append(
            Occurrence(
                system=system,
                routine=frequency,
                due_on=due,
                window_start=start,
                window_end=end,
                done_on=counted_done,
                assets=int(count),
                reference=reference,
                status=status,
            )
        )
    # Occurrences done after the period's end fold into one "not done" line.
    merged: dict[tuple[object, ...], Occurrence] = {}
    for o in occurrences:
        key = (o.system, o.routine, o.reference, o.due_on, o.window_start, o.done_on, o.status)
        if key in merged:
            o = replace(o, assets=merged[key].assets + o.assets)
        merged[key] = o
    return tuple(sorted(merged.values(), key=lambda o: (o.system, o.due_on, o.reference)))


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
        occurrences=await gather_occurrences(db, building, period),
        defects=await gather_defects(db, building, period),
    )
