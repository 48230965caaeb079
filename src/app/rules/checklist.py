"""What a rule checks: its checklist items, their answer types and the defects they imply.

Pure definitions (no I/O), shared by the shipped catalogue, the publishing API and the
evaluation of a session's answers.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

ITEM_KEY_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
MAX_ITEMS = 100


class Severity(StrEnum):
    """Defect classes of AS 1851-2012, plus the two remark levels field products add."""

    critical = "critical"
    non_critical = "non_critical"
    non_conformance = "non_conformance"
    recommendation = "recommendation"
    informational = "informational"


class ItemType(StrEnum):
    pass_fail = "pass_fail"  # noqa: S105  (not a password)
    number = "number"
    text = "text"
    choice = "choice"
    photo_required = "photo_required"


class Outcome(StrEnum):
    """What an answer means for one checklist item."""

    pass_ = "pass"  # noqa: S105  (not a password)
    fail = "fail"
    missing = "missing"
    out_of_limits = "out_of_limits"


# The failing outcomes each item type can produce (``missing`` only for required items).
FAILING_OUTCOMES: dict[ItemType, frozenset[Outcome]] = {
    ItemType.pass_fail: frozenset({Outcome.fail, Outcome.missing}),
    ItemType.number: frozenset({Outcome.out_of_limits, Outcome.missing}),
    ItemType.text: frozenset({Outcome.missing}),
    ItemType.choice: frozenset({Outcome.fail, Outcome.missing}),
    ItemType.photo_required: frozenset({Outcome.missing}),
}

Text200 = Annotated[str, Field(min_length=1, max_length=200)]
Text500 = Annotated[str, Field(min_length=1, max_length=500)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DefectTemplate(_Strict):
    """The defect a failing outcome raises."""

    severity: Severity = Field(description="Defect class raised by this outcome.")
    remark: Text500 = Field(description="Default remark written on the defect.")


class Choice(_Strict):
    value: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        description="What the device stores as the answer."
    )
    label: Text200 | None = Field(default=None, description="What the technician reads.")
    passes: bool = Field(
        default=True, description="Whether this answer passes (false: outcome `fail`)."
    )


class ChecklistItem(_Strict):
    """One thing the technician checks or measures."""

    key: str = Field(
        pattern=ITEM_KEY_PATTERN,
        description="Stable key (lower case, digits, `_`), never reused for another meaning; "
        "answers are stored under it.",
    )
    prompt: Text500 = Field(description="What the technician is asked.")
    type: ItemType = Field(
        description="pass_fail (true/false), number (with unit and limits), text, choice "
        "(one of `choices`), photo_required (one or more evidence ids)."
    )
    required: bool = Field(
        default=True, description="A required item left unanswered has outcome `missing`."
    )
    unit: Annotated[str, Field(min_length=1, max_length=32)] | None = Field(
        default=None, description="number only: unit of the reading (e.g. kPa, s, mm)."
    )
    min: float | None = Field(default=None, description="number only: lowest acceptable value.")
    max: float | None = Field(default=None, description="number only: highest acceptable value.")
    choices: list[Choice] | None = Field(
        default=None, description="choice only: the allowed answers (at least two)."
    )
    defects: dict[Outcome, DefectTemplate] = Field(
        default_factory=dict,
        description="For each failing outcome (fail, out_of_limits, missing), the defect it "
        "raises. An outcome not listed raises none.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ChecklistItem:
        is_number = self.type is ItemType.number
        if not is_number and (self.unit, self.min, self.max) != (None, None, None):
            raise ValueError("unit, min and max are for number items only")
        if is_number and self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min must not exceed max")
        if (self.type is ItemType.choice) != (self.choices is not None):
            raise ValueError("choices are required for choice items and only for them")
        if self.choices is not None:
            values = [c.value for c in self.choices]
            if len(values) < 2 or len(set(values)) != len(values):
                raise ValueError("choices need at least two distinct values")
        allowed = FAILING_OUTCOMES[self.type]
        extra = set(self.defects) - allowed
        if extra:
            names = ", ".join(sorted(o.value for o in extra))
            raise ValueError(f"a {self.type.value} item cannot have outcome(s) {names}")
        return self


class Checklist(_Strict):
    """A rule's checklist: items with unique keys, in the order they are asked."""

    items: list[ChecklistItem] = Field(min_length=1, max_length=MAX_ITEMS)

    @model_validator(mode="after")
    def _unique_keys(self) -> Checklist:
        keys = [item.key for item in self.items]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise ValueError(f"item keys must be unique: {', '.join(duplicates)}")
        return self


_SEMVER = re.compile(r"^(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})$")
SEMVER_PATTERN = _SEMVER.pattern


def parse_version(text: str) -> tuple[int, int, int]:
    """``"1.2.3"`` → ``(1, 2, 3)``; raises ValueError for anything but MAJOR.MINOR.PATCH."""
    match = _SEMVER.match(text)
    if match is None:
        raise ValueError("must be a semantic version MAJOR.MINOR.PATCH, e.g. 1.0.0")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def checklist_from_json(items: list[dict[str, Any]]) -> Checklist:
    return Checklist.model_validate({"items": items})
