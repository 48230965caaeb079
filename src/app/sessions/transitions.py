"""The test session life cycle (pure): draft → scheduled → in_progress → completed."""

from __future__ import annotations

from src.app.sessions.models import SessionStatus

NEXT_STATUS: dict[SessionStatus, frozenset[SessionStatus]] = {
    SessionStatus.draft: frozenset({SessionStatus.scheduled}),
    SessionStatus.scheduled: frozenset({SessionStatus.in_progress}),
    SessionStatus.in_progress: frozenset({SessionStatus.completed}),
    SessionStatus.completed: frozenset(),
}


def allowed_next(current: SessionStatus) -> list[SessionStatus]:
    return sorted(NEXT_STATUS[current], key=list(SessionStatus).index)


def transition_refusal(current: SessionStatus, target: SessionStatus) -> str | None:
    """Why ``current → target`` is illegal, naming the allowed next states; None if legal.

    Asking for the status the session already has is not a transition and is allowed
    (a retried PATCH must not fail), except on a completed session, which is locked.
    """
    if current is SessionStatus.completed:
        return "The test session is completed and locked; no status may follow 'completed'"
    if target is current or target in NEXT_STATUS[current]:
        return None
    names = ", ".join(f"'{s.value}'" for s in allowed_next(current))
    return (
        f"A test session cannot go from '{current.value}' to '{target.value}'; "
        f"the allowed next status is {names}"
    )
