"""What reports read from the schedule (the yearly condition report lists what went out of
tolerance)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from src.app.rules.frequency import Frequency
from src.app.schedule.models import ScheduleOccurrence
from src.app.schedule.planning import OccurrenceStatus, Outcome, occurrence_status
from src.app.schedule.queries import OccurrenceFilters, StatusFilter, list_occurrences


@dataclass(frozen=True, slots=True)
class OutOfToleranceItem:
    occurrence_id: uuid.UUID
    asset_id: uuid.UUID
    rule_code: str
    frequency: Frequency
    due_on: date
    window_start: date
    window_end: date
    done_on: date | None  # None: missed (never done)
    done_session_id: uuid.UUID | None
    status: OccurrenceStatus  # missed, or done (outside its window)
    outcome: Outcome | None


async def out_of_tolerance_occurrences(
    db: AsyncSession,
    *,
    organisation_id: uuid.UUID,
    building_id: uuid.UUID,
    date_from: date,
    date_to: date,
    today: date,
) -> list[OutOfToleranceItem]:
    """The building's occurrences due in ``[date_from, date_to]`` that are out of tolerance
    on ``today`` (in the schedule's time zone: ``service.local_today``), soonest first.
    The caller has checked that the building is the organisation's."""
    filters = OccurrenceFilters(date_from, date_to, building_id, StatusFilter.out_of_tolerance)
    statement = list_occurrences(organisation_id, filters, today).order_by(
        ScheduleOccurrence.due_on, ScheduleOccurrence.id
    )
    rows = (await db.execute(statement)).scalars().all()
    return [
        OutOfToleranceItem(
            occurrence_id=row.id,
            asset_id=row.asset_id,
            rule_code=row.rule_code,
            frequency=Frequency(row.frequency),
            due_on=row.due_on,
            window_start=row.window_start,
            window_end=row.window_end,
            done_on=row.done_on,
            done_session_id=row.done_session_id,
            status=occurrence_status(row.due_on, row.window_end, row.done_on, today),
            outcome=Outcome(row.outcome) if row.outcome else None,
        )
        for row in rows
    ]
