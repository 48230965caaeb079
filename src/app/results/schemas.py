"""Request and response bodies of results sync (docs/api/results-sync.md)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from src.app.core.schemas import RequestModel, storable_json_problem

MAX_CHANGES = 1000
MAX_ID_LENGTH = 128
# No control characters in ids: they are stored in text columns (PostgreSQL refuses
# U+0000) and the stored order key joins them with U+001F.
_ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"

ClientId = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=_ID_PATTERN)]

_CHANGE_EXAMPLE: dict[str, Any] = {
    "op": "set",
    "path": "/assets/ext-12/pressure_kpa",
    "value": 1210,
    "ts": "2026-11-30T23:10:04.120Z/0003",
    "op_id": "0193a1f2-7c3e-7d2a-9f00-1b2c3d4e5f60",
}


class ChangeIn(RequestModel):
    """One change. ``value`` is required for ``set`` (``null`` is a value) and not
    allowed on ``delete``; ``ts`` and ``op_id`` are stamped by the server when absent."""

    # Paths and ids are taken verbatim: a trailing space is part of a key.
    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=False, json_schema_extra={"example": _CHANGE_EXAMPLE}
    )

    op: Literal["set", "delete"]
    path: str = Field(description="RFC 6901 JSON Pointer, e.g. /assets/ext-12/pressure_kpa")
    value: Any = Field(default=None, description="Any JSON value up to 64 KiB (set only)")
    ts: str | None = Field(
        default=None,
        description="Hybrid logical clock timestamp YYYY-MM-DDTHH:MM:SS.mmmZ/NNNN",
        examples=["2026-11-30T23:10:04.120Z/0003"],
    )
    op_id: ClientId | None = Field(
        default=None, description="Stable id of the op; retries of one op reuse it"
    )

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any, info: ValidationInfo) -> Any:  # type: ignore[override]
        # ``value`` is walked once, with its size, by ``results.ingest.prepare_changes``
        # (same checks: U+0000, surrogates, NaN/Infinity, depth), not here as well.
        if info.field_name == "value":
            return value
        problem = storable_json_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


class ResultsSubmission(RequestModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    device_id: ClientId | None = Field(
        default=None,
        description="The sending device; ops without one are attributed to `user:<user id>`",
    )
    changes: list[ChangeIn] = Field(min_length=1, max_length=MAX_CHANGES)


class ResultsSubmitted(BaseModel):
    session_id: uuid.UUID
    version: int = Field(description="Number of ops accepted for this session so far")
    applied: int = Field(description="Ops of this request newly accepted into the log")
    duplicates: int = Field(description="Ops of this request that were already received")
    server_ts: str = Field(description="The server's hybrid logical clock after the merge")
    document: dict[str, Any] = Field(
        default_factory=dict,
        description="The merged document; absent with `Prefer: return=minimal`",
    )


class ResultOpOut(BaseModel):
    """One accepted op; ``value`` is absent for a delete (and may be ``null`` for a set)."""

    version: int
    op: Literal["set", "delete"]
    path: str
    value: Any = None
    ts: str
    device_id: str
    op_id: str


class ResultsOut(BaseModel):
    """``ops`` and ``next_since`` are present only when ``since`` was given."""

    session_id: uuid.UUID
    version: int
    document: dict[str, Any]
    ops: list[ResultOpOut] | None = Field(
        default=None,
        description="Ops accepted after `since`, oldest first, at most `limit` of them",
    )
    next_since: int | None = Field(
        default=None,
        description="When more ops remain: pass as `since` to fetch the next page; "
        "`null` when `ops` reaches `version`",
    )
