"""Status machines (pure): which status may follow which, and why a move is refused.

Every domain with a life cycle (test sessions, defects) declares one ``StateMachine`` and
answers an illegal move with 409 and the machine's ``refusal`` text, which names the
allowed next statuses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Generic, TypeVar

S = TypeVar("S", bound=StrEnum)


class StateMachine(Generic[S]):
    def __init__(
        self,
        noun: str,
        next_states: Mapping[S, frozenset[S]],
        *,
        terminal_refusal: Callable[[S], str] | None = None,
    ) -> None:
        """``noun`` names the thing in messages ("test session"); ``terminal_refusal``
        words the refusal of any move from a status nothing follows."""
        self.noun = noun
        self.next_states = dict(next_states)
        self._order = list(next_states)
        self._terminal_refusal = terminal_refusal or (
            lambda current: f"The {noun} is '{current.value}'; no status may follow it"
        )

    def allowed_next(self, current: S) -> list[S]:
        return sorted(self.next_states[current], key=self._order.index)

    def is_terminal(self, current: S) -> bool:
        return not self.next_states[current]

    def refusal(self, current: S, target: S) -> str | None:
        """Why ``current → target`` is illegal, naming the allowed next statuses; None if
        legal. Asking for the current status is not a move and is allowed (a retried
        request must not fail), except from a terminal status."""
        if self.is_terminal(current):
            return self._terminal_refusal(current)
        if target is current or target in self.next_states[current]:
            return None
        allowed = self.allowed_next(current)
        names = ", ".join(f"'{s.value}'" for s in allowed)
        which = (
            "the allowed next status is" if len(allowed) == 1 else "the allowed next statuses are"
        )
        return (
            f"A {self.noun} cannot go from '{current.value}' to '{target.value}'; {which} {names}"
        )
