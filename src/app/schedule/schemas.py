"""Request and response bodies of the service schedule."""

from __future__ import annotations

import uuid
from datetime import date

from pydantic import BaseModel, Field

from src.app.core.schemas import RequestModel, ResourceModel
from src.app.rules.frequency import Frequency
from src.app.schedule.models import ScheduleOccurrence, ScheduleRoutine
from src.app.schedule.planning import OccurrenceStatus, Outcome, occurrence_status

STATUS_DESCRIPTION = (
    "On the day of the request: `due` (open, scheduled today or later), `overdue` (open, "
    "past the scheduled date, still in tolerance), `missed` (open, the tolerance window "
    "has ended: out of tolerance), `done`."
)
OUTCOME_DESCRIPTION = (
    "For a done occurrence: `on_time` (on the scheduled date), `early` / `late` (inside "
    "the tolerance window), `out_of_tolerance` (outside it). Null while open."
)


class OccurrenceOut(ResourceModel):
    """One scheduled date of one routine of one asset."""

    asset_id: uuid.UUID
    building_id: uuid.UUID
    rule_code: str = Field(description="The rule of the catalogue this routine follows.")
    frequency: Frequency
    seq: int = Field(description="n in baseline + n x period (1 is the first after it).")
    due_on: date = Field(description="The scheduled date: baseline + n x period.")
    window_start: date = Field(description="First day of the tolerance window (inclusive).")
    window_end: date = Field(description="Last day of the tolerance window (inclusive).")
    status: OccurrenceStatus = Field(description=STATUS_DESCRIPTION)
    out_of_tolerance: bool = Field(
        description="Missed, or done outside its window: to be reported."
    )
    done_on: date | None = Field(description="The day the covering session was completed.")
    done_session_id: uuid.UUID | None = Field(description="The session that covered it.")
    outcome: Outcome | None = Field(description=OUTCOME_DESCRIPTION)

    @classmethod
    def of(cls, row: ScheduleOccurrence, today: date) -> OccurrenceOut:
        status = occurrence_status(row.due_on, row.window_end, row.done_on, today)
        return cls(
            id=row.id,
            created_at=row.created_at,
            updated_at=row.updated_at,
            asset_id=row.asset_id,
            building_id=row.building_id,
            rule_code=row.rule_code,
            frequency=Frequency(row.frequency),
            seq=row.seq,
            due_on=row.due_on,
            window_start=row.window_start,
            window_end=row.window_end,
            status=status,
            out_of_tolerance=status is OccurrenceStatus.missed
            or row.outcome == Outcome.out_of_tolerance.value,
            done_on=row.done_on,
            done_session_id=row.done_session_id,
            outcome=Outcome(row.outcome) if row.outcome else None,
        )


class RoutineOut(ResourceModel):
    """A rule of the catalogue applied to an asset, and where its dates come from."""

    asset_id: uuid.UUID
    rule_code: str
    frequency: Frequency
    baseline_on: date | None = Field(
        description="Set by an admin for this routine only (wins over the asset's)."
    )
    effective_baseline_on: date | None = Field(
        description="The baseline the scheduled dates are computed from; null until known."
    )
    baseline_source: str | None = Field(
        description="`routine`, `asset` (admin-set), `installed_on`, `first_service`, or null."
    )

    @classmethod
    def of(cls, routine: ScheduleRoutine) -> RoutineOut:
        return cls.model_validate(routine)


class RoutineList(BaseModel):
    data: list[RoutineOut]


class BaselineIn(RequestModel):
    baseline_on: date | None = Field(
        description=(
            "The initial activity's date: scheduled dates are baseline + n x period. Null "
            "removes it (the default applies again: the asset's installed_on, else its "
            "first service)."
        )
    )
