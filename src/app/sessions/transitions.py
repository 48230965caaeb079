"""The test session life cycle (pure): draft → scheduled → in_progress → completed."""

from __future__ import annotations

from src.app.core.transitions import StateMachine
from src.app.sessions.models import SessionStatus

SESSION_LIFECYCLE = StateMachine(
    "test session",
    {
        SessionStatus.draft: frozenset({SessionStatus.scheduled}),
        SessionStatus.scheduled: frozenset({SessionStatus.in_progress}),
        SessionStatus.in_progress: frozenset({SessionStatus.completed}),
        SessionStatus.completed: frozenset(),
    },
    terminal_refusal=lambda _current: (
        "The test session is completed and locked; no status may follow 'completed'"
    ),
)


def allowed_next(current: SessionStatus) -> list[SessionStatus]:
    return SESSION_LIFECYCLE.allowed_next(current)


def transition_refusal(current: SessionStatus, target: SessionStatus) -> str | None:
    """Why ``current → target`` is illegal, naming the allowed next state; None if legal."""
    return SESSION_LIFECYCLE.refusal(current, target)
