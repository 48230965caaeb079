"""Request and response bodies of test sessions."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import Field, field_validator

from src.app.core.schemas import CalendarDate, RequestModel, ResourceModel, UTCTimestamp
from src.app.rules.frequency import Frequency
from src.app.sessions.models import SessionStatus, TestSession

SessionName = Annotated[str, Field(min_length=1, max_length=200)]
FREQUENCY_DESCRIPTION = "Service interval (AS 1851): " + ", ".join(f.value for f in Frequency)
SCHEDULED_FOR_DESCRIPTION = "The day the visit is planned for (YYYY-MM-DD)."


class RoutineRef(RequestModel):
    asset_id: uuid.UUID = Field(description="An asset of the session's building.")
    rule_code: str = Field(
        min_length=1, max_length=64, description="A rule of the catalogue that applies to it."
    )


class SessionCreate(RequestModel):
    id: uuid.UUID | None = Field(
        default=None,
        description=(
            "Optional, chosen by the client (offline devices create sessions before they "
            "reach the server). Omitted: the server picks one."
        ),
    )
    building_id: uuid.UUID
    session_name: SessionName
    frequency: Frequency | None = Field(default=None, description=FREQUENCY_DESCRIPTION)
    scheduled_for: CalendarDate | None = Field(default=None, description=SCHEDULED_FOR_DESCRIPTION)
    routines: list[RoutineRef] = Field(
        default_factory=list,
        max_length=10_000,
        description=(
            "The routines (asset, rule) this visit covers, e.g. taken from the due list, so "
            "every device knows what to test; completing the session marks them done. "
            "Empty: a session with a `frequency` covers every routine of its building up to "
            "that frequency. Recorded when the session is created (201); not compared when "
            "the same id is sent again."
        ),
    )

    def routine_pairs(self) -> list[tuple[uuid.UUID, str]]:
        return [(r.asset_id, r.rule_code) for r in self.routines]

    def same_as(self, existing: TestSession) -> bool:
        """Whether ``existing`` already holds exactly what this body asks for."""
        return (
            existing.building_id == self.building_id
            and existing.session_name == self.session_name
            and existing.frequency == (self.frequency.value if self.frequency else None)
            and existing.scheduled_for == self.scheduled_for
        )


class SessionUpdate(RequestModel):
    """Only the fields sent change. ``frequency`` and ``scheduled_for`` may be cleared with
    null. ``status`` moves one step along draft → scheduled → in_progress → completed."""

    session_name: SessionName | None = None
    building_id: uuid.UUID | None = None
    frequency: Frequency | None = Field(default=None, description=FREQUENCY_DESCRIPTION)
    scheduled_for: CalendarDate | None = Field(default=None, description=SCHEDULED_FOR_DESCRIPTION)
    status: SessionStatus | None = Field(
        default=None,
        description=(
            "The next status: draft → scheduled → in_progress → completed, one step at a "
            "time (the current status is accepted as a no-op). Anything else → 409."
        ),
    )

    @field_validator("session_name", "building_id", "status", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may not be null")
        return value


class SessionOut(ResourceModel):
    building_id: uuid.UUID | None = Field(
        description=(
            "Null only while the session is a placeholder that results sync created "
            "before the device's POST arrived."
        )
    )
    session_name: str
    frequency: Frequency | None = Field(description=FREQUENCY_DESCRIPTION)
    scheduled_for: CalendarDate | None = Field(description=SCHEDULED_FOR_DESCRIPTION)
    status: SessionStatus
    created_by: uuid.UUID | None = Field(description="The user who created the session.")
    started_at: UTCTimestamp | None = Field(
        default=None,
        description="When it moved to `in_progress`; the rule versions published by then "
        "are the ones its results are evaluated against.",
    )
    completed_at: UTCTimestamp | None = Field(
        default=None, description="When it moved to `completed`."
    )

    @classmethod
    def of(cls, test_session: TestSession) -> SessionOut:
        return cls.model_validate(test_session)
