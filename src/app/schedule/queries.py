"""The schedule's list queries, built without I/O, so tests can EXPLAIN them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_, select

from src.app.core.pagination import Keyset
from src.app.schedule.calendar import MAX_TOLERANCE_DAYS
from src.app.schedule.models import ScheduleOccurrence
from src.app.schedule.planning import Outcome

DUE_ENDPOINT = "GET /v1/schedule/due"
BUILDING_SCHEDULE_ENDPOINT = "GET /v1/buildings/{id}/schedule"
# Soonest first; the cursor carries (due_on, id).
SOONEST_FIRST = Keyset(key="due_on", descending=False)

_O = ScheduleOccurrence


class StatusFilter(StrEnum):
    due = "due"
    overdue = "overdue"
    out_of_tolerance = "out_of_tolerance"
    done = "done"


@dataclass(frozen=True, slots=True)
class OccurrenceFilters:
    date_from: date | None = None
    date_to: date | None = None
    building_id: uuid.UUID | None = None
    status: StatusFilter | None = None

    def binding(self) -> dict[str, Any]:
        """What a cursor of this list is bound to (not "today": a walk may cross midnight)."""
        return {
            "from": self.date_from,
            "to": self.date_to,
            "building_id": self.building_id,
            "status": self.status.value if self.status else None,
        }


def status_condition(status: StatusFilter, today: date) -> ColumnElement[bool]:
    """The rows in ``status`` on ``today``. Open rows are written ``done_on IS NULL`` so
    PostgreSQL can use the partial index of open occurrences."""
    open_row = _O.done_on.is_(None)
    if status is StatusFilter.done:
        return _O.done_on.is_not(None)
    if status is StatusFilter.due:
        return and_(open_row, _O.due_on >= today)
    if status is StatusFilter.overdue:
        # The lower bound on due_on (no window is wider) keeps it an index range.
        return and_(
            open_row,
            _O.due_on < today,
            _O.due_on >= today - timedelta(days=MAX_TOLERANCE_DAYS),
            _O.window_end >= today,
        )
    return or_(
        and_(open_row, _O.window_end < today),
        _O.outcome == Outcome.out_of_tolerance.value,
    )


def list_occurrences(
    organisation_id: uuid.UUID, filters: OccurrenceFilters, today: date
) -> Select[Any]:
    statement = select(_O).where(_O.organisation_id == organisation_id)
    if filters.building_id is not None:
        statement = statement.where(_O.building_id == filters.building_id)
    if filters.date_from is not None:
        statement = statement.where(_O.due_on >= filters.date_from)
    if filters.date_to is not None:
        statement = statement.where(_O.due_on <= filters.date_to)
    if filters.status is not None:
        statement = statement.where(status_condition(filters.status, today))
    return statement
