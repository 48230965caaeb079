"""The session life cycle as pure rules: every (current, target) pair."""

from __future__ import annotations

import itertools

import pytest

from src.app.sessions.models import SessionStatus as S
from src.app.sessions.transitions import allowed_next, transition_refusal

LEGAL = {(S.draft, S.scheduled), (S.scheduled, S.in_progress), (S.in_progress, S.completed)}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(S, S)))
def test_only_the_three_forward_steps_and_no_ops_are_legal(current: S, target: S) -> None:
    refusal = transition_refusal(current, target)
    if current is S.completed:
        assert (
            refusal == "The test session is completed and locked; no status may follow 'completed'"
        )
    elif (current, target) in LEGAL or current is target:
        assert refusal is None
    else:
        assert refusal == (
            f"A test session cannot go from '{current.value}' to '{target.value}'; "
            f"the allowed next status is '{allowed_next(current)[0].value}'"
        )


def test_allowed_next() -> None:
    assert allowed_next(S.draft) == [S.scheduled]
    assert allowed_next(S.scheduled) == [S.in_progress]
    assert allowed_next(S.in_progress) == [S.completed]
    assert allowed_next(S.completed) == []
