"""Per-path state of a session's results: what a merge needs to remember. Pure, no I/O.

For every path the state keeps at most two ops: the newest ``set`` at that path, and the
newest ``delete`` at that path when it is newer than that set. The document of the state
(:func:`document`) equals the merge of the whole op log (``crdt.merge``); the proof is
in docs/api/results-engine.md. Folding one op into the state touches only its own path,
so a write costs O(ops in the batch) whatever the log or the document hold, and an op
hours late costs the same as the newest one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from src.app.results.crdt import Op, OrderKey, merge

__all__ = [
    "PathState",
    "document",
    "fold",
    "fold_op",
    "last_key",
    "state_ops",
    "stored_bytes",
]


@dataclass(frozen=True, slots=True)
class PathState:
    """The registers of one path. ``delete`` is only kept when newer than ``set``."""

    set: Op | None = None
    delete: Op | None = None
    set_bytes: int = 0  # size of the set's value as compact JSON

    @property
    def path(self) -> str:
        op = self.set or self.delete
        assert op is not None, "an empty PathState has no path"
        return op.path


def _newer(candidate: Op, current: Op | None) -> bool:
    return current is None or candidate.order_key > current.order_key


def fold_op(current: PathState | None, op: Op, value_bytes: int = 0) -> PathState:
    """The state of ``op.path`` after receiving ``op`` (``value_bytes``: its value's size).

    Commutative and idempotent: folding ops in any order, any number of times, gives the
    same registers (each is a max over the order key).
    """
    state = current or PathState()
    if op.op == "set":
        if not _newer(op, state.set):
            return state
        delete = state.delete
        if delete is not None and delete.order_key < op.order_key:
            delete = None  # an older delete at this path is hidden by this set forever
        return PathState(op, delete, value_bytes)
    if state.delete is not None and not _newer(op, state.delete):
        return state
    if state.set is not None and not _newer(op, state.set):
        return state  # older than the set at this path: hidden by it everywhere
    return PathState(state.set, op, state.set_bytes)


def fold(states: Mapping[str, PathState], ops: Iterable[tuple[Op, int]]) -> dict[str, PathState]:
    """Fold ``(op, value_bytes)`` pairs into ``states``; return only the changed paths."""
    changed: dict[str, PathState] = {}
    for op, size in ops:
        before = changed.get(op.path) or states.get(op.path)
        after = fold_op(before, op, size)
        if after is not before:
            changed[op.path] = after
    return changed


def state_ops(states: Iterable[PathState]) -> list[Op]:
    """The ops a state remembers."""
    out: list[Op] = []
    for state in states:
        if state.set is not None:
            out.append(state.set)
        if state.delete is not None:
            out.append(state.delete)
    return out


def document(states: Iterable[PathState]) -> dict[str, Any]:
    """The results document the state stands for: the merge of the remembered ops."""
    return merge(state_ops(states))


def stored_bytes(state: PathState | None) -> int:
    """What one path's state costs in storage: its path, plus the set's value."""
    if state is None or (state.set is None and state.delete is None):
        return 0
    return len(state.path.encode("utf-8")) + (state.set_bytes if state.set is not None else 0)


def last_key(states: Iterable[PathState]) -> OrderKey | None:
    """The largest order key the state remembers (None when empty)."""
    keys = [op.order_key for op in state_ops(states)]
    return max(keys) if keys else None
