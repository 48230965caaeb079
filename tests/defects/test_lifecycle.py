"""The defect life cycle and deadlines as pure rules: every (current, target) pair."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from src.app.defects.lifecycle import (
    DEFECT_LIFECYCLE,
    is_overdue,
    response_due_at,
    response_hours,
    verification_refusal,
)
from src.app.defects.lifecycle import DefectStatus as D
from src.app.rules.checklist import Severity

LEGAL = {
    (D.open, D.acknowledged),
    (D.acknowledged, D.quoted),
    (D.acknowledged, D.repair_scheduled),
    (D.quoted, D.repair_scheduled),
    (D.repair_scheduled, D.repaired),
    (D.repaired, D.verified),
    (D.repaired, D.repair_scheduled),
    (D.verified, D.closed),
    *((s, D.cancelled) for s in (D.open, D.acknowledged, D.quoted, D.repair_scheduled, D.repaired)),
}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(D, D)))
def test_every_pair(current: D, target: D) -> None:
    refusal = DEFECT_LIFECYCLE.refusal(current, target)
    if current in (D.closed, D.cancelled):
        assert refusal == f"The defect is '{current.value}'; no status may follow it"
    elif (current, target) in LEGAL or current is target:
        assert refusal is None
    else:
        allowed = DEFECT_LIFECYCLE.allowed_next(current)
        assert refusal is not None
        assert refusal.startswith(f"A defect cannot go from '{current.value}' to '{target.value}'")
        for status in allowed:
            assert f"'{status.value}'" in refusal.split(";")[1]


def test_allowed_next_in_life_cycle_order() -> None:
    assert DEFECT_LIFECYCLE.allowed_next(D.acknowledged) == [
        D.quoted,
        D.repair_scheduled,
        D.cancelled,
    ]
    assert DEFECT_LIFECYCLE.refusal(D.open, D.closed) == (
        "A defect cannot go from 'open' to 'closed'; the allowed next statuses are "
        "'acknowledged', 'cancelled'"
    )


def test_deadlines() -> None:
    raised = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert response_hours({}, Severity.critical) == 24
    assert response_hours({}, Severity.non_critical) is None
    assert response_hours({"critical": 4}, Severity.critical) == 4
    assert response_hours({"critical": None}, Severity.critical) is None
    due = response_due_at(raised, 24)
    assert due == raised + timedelta(hours=24)
    assert response_due_at(raised, None) is None
    assert not is_overdue(D.open, due, due)
    assert is_overdue(D.open, due, due + timedelta(microseconds=1))
    assert not is_overdue(D.acknowledged, due, due + timedelta(days=1))
    assert not is_overdue(D.open, None, due + timedelta(days=1))


def test_separation_of_duties() -> None:
    repairer, verifier = uuid.uuid4(), uuid.uuid4()
    assert verification_refusal(repairer, verifier) is None
    assert verification_refusal(repairer, repairer) is not None
