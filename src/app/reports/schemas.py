"""Request body of the yearly condition report."""

from __future__ import annotations

from datetime import date

from pydantic import Field, model_validator

from src.app.core.schemas import RequestModel

MAX_PERIOD_DAYS = 2 * 366


class YearlyConditionCreate(RequestModel):
    period_start: date = Field(description="First day of the period reported on.")
    period_end: date = Field(description="Last day of the period (inclusive).")
    accords_with_design: bool = Field(
        description="Whether the systems generally accord with their approved design."
    )
    statement: str = Field(
        default="",
        max_length=4000,
        description="The statement's wording or remarks (free text).",
    )
    responsible_person: str = Field(
        min_length=1, max_length=200, description="Name of the person responsible."
    )
    licence_number: str = Field(
        min_length=1, max_length=100, description="Their licence or accreditation number."
    )

    @model_validator(mode="after")
    def _period(self) -> YearlyConditionCreate:
        if self.period_end < self.period_start:
            raise ValueError("period_end must not be before period_start")
        if (self.period_end - self.period_start).days > MAX_PERIOD_DAYS:
            raise ValueError(f"the period may span at most {MAX_PERIOD_DAYS} days")
        return self
