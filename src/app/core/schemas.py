"""Base models every domain's request and response bodies build on."""

from __future__ import annotations

import math
import re
import uuid
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, field_validator

from src.app.core.clock import to_rfc3339

UTCTimestamp = Annotated[datetime, PlainSerializer(to_rfc3339, return_type=str, when_used="json")]

_FULL_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _full_date_only(value: Any) -> Any:
    # Pydantic would also take a number (or a numeric string) as a Unix timestamp; the
    # schema says YYYY-MM-DD, and the server accepts exactly that.
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not _FULL_DATE.match(value):
        raise ValueError("must be a date written YYYY-MM-DD")
    return value


CalendarDate = Annotated[date, BeforeValidator(_full_date_only)]
"""A date in and out as ``YYYY-MM-DD`` (RFC 3339 full-date), nothing else."""

_DATE_TIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})$"
)


def _date_time_only(value: Any) -> Any:
    # As for dates: no Unix timestamps, and an offset is required (RFC 3339 date-time).
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE_TIME.match(value):
        raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2026-12-01T09:30:00Z")
    return value


DateTimeInput = Annotated[datetime, BeforeValidator(_date_time_only)]
"""A timestamp accepted only as RFC 3339 ``date-time`` with an offset."""


def storable_json_problem(value: Any, depth: int = 0) -> str | None:
    """Why ``value`` cannot be stored faithfully by both databases, or None.

    PostgreSQL refuses U+0000 in text and JSONB and lone surrogates anywhere; JSON has no
    NaN or Infinity (Python's parser accepts them, and 1e400 becomes infinity).
    """
    if depth > 64:
        return "is nested deeper than 64 levels"
    if isinstance(value, str):
        if "\x00" in value:
            return "must not contain the character U+0000"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "must not contain unpaired surrogate characters"
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else "must be a finite number (no NaN or Infinity)"
    if isinstance(value, dict):
        for key, item in value.items():
            problem = storable_json_problem(key, depth + 1) or storable_json_problem(
                item, depth + 1
            )
            if problem is not None:
                return problem
        return None
    if isinstance(value, list | tuple):
        for item in value:
            problem = storable_json_problem(item, depth + 1)
            if problem is not None:
                return problem
    return None


class RequestModel(BaseModel):
    """Request bodies reject unknown fields, so a client's typo never passes silently, and
    any value the database could not store, so bad input is a 422 and never a 500."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        if isinstance(value, BaseModel):
            return value  # validated by its own class
        problem = storable_json_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


class ResourceModel(BaseModel):
    """Every resource representation carries id, created_at and updated_at."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    created_at: UTCTimestamp
    updated_at: UTCTimestamp
