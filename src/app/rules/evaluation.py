"""Evaluating checklist answers (pure): each item's outcome and the defect it implies.

Answers, as the results document keeps them (see docs/api/rules.md):

- pass_fail: ``true``/``"pass"`` passes, ``false``/``"fail"`` fails;
- number: a JSON number, compared with ``min``/``max`` (both inclusive);
- text: a non-blank string;
- choice: one of the item's choice values;
- photo_required: an evidence id (string) or a non-empty list of them.

No answer (absent or JSON null), or an answer of the wrong shape, is ``missing``; the
``detail`` says which.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from src.app.rules.checklist import ChecklistItem, DefectTemplate, ItemType, Outcome

_ABSENT = object()


@dataclass(frozen=True, slots=True)
class ItemResult:
    key: str
    outcome: Outcome
    answer: Any
    detail: str | None
    defect: DefectTemplate | None


def _number(answer: Any) -> float | None:
    if isinstance(answer, bool) or not isinstance(answer, int | float):
        return None
    return float(answer) if math.isfinite(answer) else None


def _judge(item: ChecklistItem, answer: Any) -> tuple[Outcome, str | None]:
    if answer is _ABSENT or answer is None:
        return Outcome.missing, "not answered"
    match item.type:
        case ItemType.pass_fail:
            if answer is True or answer == "pass":
                return Outcome.pass_, None
            if answer is False or answer == "fail":
                return Outcome.fail, None
            return Outcome.missing, "not a pass/fail answer (true, false, 'pass' or 'fail')"
        case ItemType.number:
            value = _number(answer)
            if value is None:
                return Outcome.missing, "not a number"
            if item.min is not None and value < item.min:
                return Outcome.out_of_limits, f"{value:g} is below the minimum {item.min:g}"
            if item.max is not None and value > item.max:
                return Outcome.out_of_limits, f"{value:g} is above the maximum {item.max:g}"
            return Outcome.pass_, None
        case ItemType.text:
            if isinstance(answer, str) and answer.strip():
                return Outcome.pass_, None
            return Outcome.missing, "not a non-blank text"
        case ItemType.choice:
            for choice in item.choices or ():
                if answer == choice.value:
                    return (Outcome.pass_, None) if choice.passes else (Outcome.fail, None)
            return Outcome.missing, "not one of the item's choices"
        case ItemType.photo_required:
            ids = [answer] if isinstance(answer, str) else answer
            if isinstance(ids, list) and ids and all(isinstance(i, str) and i for i in ids):
                return Outcome.pass_, None
            return Outcome.missing, "no photo (an evidence id or a list of them)"


def evaluate_item(item: ChecklistItem, answer: Any = _ABSENT) -> ItemResult:
    """The outcome of one item; leave ``answer`` out when there is none."""
    outcome, detail = _judge(item, answer)
    # An optional item may stay unanswered without consequence.
    optional_gap = outcome is Outcome.missing and not item.required
    defect = None if optional_gap else item.defects.get(outcome)
    shown = None if answer is _ABSENT else answer
    return ItemResult(item.key, outcome, shown, detail, defect)


def evaluate_checklist(items: Sequence[ChecklistItem], answers: Any) -> list[ItemResult]:
    """Every item's result, in checklist order. ``answers`` maps item keys to answers;
    anything else (absent, a scalar) counts as no answers at all."""
    found: Mapping[str, Any] = answers if isinstance(answers, Mapping) else {}
    return [evaluate_item(item, found.get(item.key, _ABSENT)) for item in items]
