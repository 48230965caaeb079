"""Per-path state of a session's results: what a merge needs to remember. Pure, no I/O.

For every path the state keeps at most two ops: the newest ``set`` at that path, and the
newest ``delete`` at that path when it is newer than that set. The document of the state
(:func:`document`) equals the merge of the whole op log (``crdt.merge``); the proof is
in docs/api/results-engine.md. Folding one op into the state touches only its own path,
so a write costs O(ops in the batch) whatever the log or the document hold, and an op
hours late costs the same as the newest one.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from src.app.results.crdt import Op, OrderKey, copy_json, merge, parse_pointer

__all__ = [
    "PathState",
    "document",
    "document_of_rows",
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


# Stored states repeat the same paths on every read: parse each once per process.
segments_of = functools.lru_cache(maxsize=65_536)(parse_pointer)
_BY_KEY = itemgetter(0)


def document_of_rows(rows: Iterable[Sequence[Any]]) -> dict[str, Any]:
    """:func:`document` of stored state rows ``(path, set_key, set_value, del_key)``.

    The same merge without building ops: each remembered op is applied in order of its
    stored key (the joined key sorts exactly like the key tuple, see
    ``ingest.KEY_SEPARATOR``). Every read and every full write response goes through
    here, so it is kept lean; the property tests hold it equal to :func:`document`.
    """
    remembered: list[tuple[str, str, Any]] = []
    for path, set_key, value, del_key in rows:
        if set_key is not None:
            remembered.append((set_key, path, value))
        if del_key is not None:
            remembered.append((del_key, path, _DELETED))
    remembered.sort(key=_BY_KEY)
    doc: dict[str, Any] = {}
    for _key, path, value in remembered:
        *parents, last = segments_of(path)
        node = doc
        if value is _DELETED:
            for segment in parents:
                node = node.get(segment)  # type: ignore[assignment]
                if not isinstance(node, dict):
                    break
            else:
                node.pop(last, None)
            continue
        for segment in parents:
            child = node.get(segment)
            if not isinstance(child, dict):
                child = node[segment] = {}
            node = child
        # Containers are copied: a later set beneath must not write into the row.
        node[last] = copy_json(value) if value.__class__ in _CONTAINERS else value
    return doc


_DELETED = object()
_CONTAINERS = (dict, list)


def stored_bytes(state: PathState | None) -> int:
    """What one path's state costs in storage: its path, plus the set's value."""
    if state is None or (state.set is None and state.delete is None):
        return 0
    return len(state.path.encode("utf-8")) + (state.set_bytes if state.set is not None else 0)


def last_key(states: Iterable[PathState]) -> OrderKey | None:
    """The largest order key the state remembers (None when empty)."""
    keys = [op.order_key for op in state_ops(states)]
    return max(keys) if keys else None
