"""The properties catch plausible bugs: each mutant of the engine or the state is refuted.

Each mutant replaces one function with a subtly wrong version; a deterministic search
over the same op sets the property tests draw must find an op set where the mutant's
document differs from the independent reference merge.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, find, settings
from hypothesis.errors import NoSuchExample

from src.app.results import crdt, state
from src.app.results.crdt import Op
from src.app.results.state import PathState
from tests.results.test_crdt_engine import op_sets, reference_merge

# No shrinking: a mutant is caught by the first counterexample, whatever its size.
SEARCH = settings(
    max_examples=3000,
    derandomize=True,
    database=None,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@contextmanager
def patched(module: Any, name: str, replacement: Any) -> Iterator[None]:
    original = getattr(module, name)
    setattr(module, name, replacement)
    try:
        yield
    finally:
        setattr(module, name, original)


# --------------------------------------------------------------------- engine mutants


def _set_keeps_scalar_parents(document: dict[str, Any], op: Op) -> None:
    *parents, last = op.segments
    node = document
    for segment in parents:
        child = node.setdefault(segment, {})
        if not isinstance(child, dict):
            return  # mutant: a set under a scalar is dropped instead of converting it
        node = child
    if op.op == "set":
        node[last] = op.value
    else:
        node.pop(last, None)


def _delete_creates_parents(document: dict[str, Any], op: Op) -> None:
    *parents, last = op.segments
    node = document
    for segment in parents:
        child = node.get(segment)
        if not isinstance(child, dict):
            child = {}
            node[segment] = child  # mutant: delete builds the path it walks
        node = child
    if op.op == "set":
        node[last] = op.value
    else:
        node.pop(last, None)


def _set_merges_objects(document: dict[str, Any], op: Op) -> None:
    *parents, last = op.segments
    node = document
    for segment in parents:
        child = node.get(segment)
        if not isinstance(child, dict):
            child = {}
            node[segment] = child
        node = child
    if op.op == "set":
        old = node.get(last)
        if isinstance(old, dict) and isinstance(op.value, dict):
            node[last] = {**old, **op.value}  # mutant: objects merged, not replaced
        else:
            node[last] = op.value
    else:
        node.pop(last, None)


ENGINE_MUTANTS: dict[str, tuple[str, Callable[..., Any]]] = {
    "set under a scalar dropped": ("apply_op", _set_keeps_scalar_parents),
    "delete creates parents": ("apply_op", _delete_creates_parents),
    "set merges objects": ("apply_op", _set_merges_objects),
    "order ignores device": ("_sort_key", lambda op: (op.ts, op.op_id)),
    "order by device first": ("_sort_key", lambda op: (op.device_id, op.ts, op.op_id)),
    "oldest wins": ("_sort_key", lambda op: tuple(chr(0x10FFFF - ord(c)) for c in op.ts)),
}


@pytest.mark.parametrize("name", sorted(ENGINE_MUTANTS))
def test_engine_mutant_is_caught(name: str) -> None:
    attribute, replacement = ENGINE_MUTANTS[name]
    with patched(crdt, attribute, replacement):
        find(
            op_sets(max_size=10),
            lambda ops: crdt.merge(ops) != reference_merge(ops),
            settings=SEARCH,
        )


# --------------------------------------------------------------------- state mutants


def _newest_op_only(current: PathState | None, op: Op, value_bytes: int = 0) -> PathState:
    newest = [o for o in (current.set, current.delete) if o is not None] if current else []
    if newest and max(o.order_key for o in newest) > op.order_key:
        return current  # type: ignore[return-value]
    return PathState(op, None, value_bytes) if op.op == "set" else PathState(None, op)


def _set_always_drops_delete(current: PathState | None, op: Op, value_bytes: int = 0) -> PathState:
    current = current or PathState()
    if op.op == "set":
        if current.set is not None and current.set.order_key > op.order_key:
            return PathState(current.set, None, current.set_bytes)
        return PathState(op, None, value_bytes)
    return _REAL_FOLD_OP(current, op, value_bytes)


def _delete_needs_a_set(current: PathState | None, op: Op, value_bytes: int = 0) -> PathState:
    if op.op == "delete" and (current is None or current.set is None):
        return current or PathState()
    return _REAL_FOLD_OP(current, op, value_bytes)


def _set_ignores_order(current: PathState | None, op: Op, value_bytes: int = 0) -> PathState:
    if op.op == "set":
        return PathState(op, None, value_bytes)
    return _REAL_FOLD_OP(current, op, value_bytes)


def _delete_ignores_order(current: PathState | None, op: Op, value_bytes: int = 0) -> PathState:
    if op.op == "delete":
        current = current or PathState()
        return PathState(current.set, op, current.set_bytes)
    return _REAL_FOLD_OP(current, op, value_bytes)


def _fold_forgets_batch(
    states: dict[str, PathState], ops: Iterable[tuple[Op, int]]
) -> dict[str, PathState]:
    changed: dict[str, PathState] = {}
    for op, size in ops:
        changed[op.path] = state.fold_op(states.get(op.path), op, size)  # mutant
    return changed


_REAL_FOLD_OP = state.fold_op

STATE_MUTANTS: dict[str, tuple[str, Callable[..., Any]]] = {
    "newest op per path only": ("fold_op", _newest_op_only),
    "set drops a newer delete": ("fold_op", _set_always_drops_delete),
    "delete kept only beside a set": ("fold_op", _delete_needs_a_set),
    "set replaces a newer set": ("fold_op", _set_ignores_order),
    "delete replaces a newer delete": ("fold_op", _delete_ignores_order),
    "batch folded against the old state": ("fold", _fold_forgets_batch),
}


def _state_differs(ops: list[Op]) -> bool:
    # Two batches in the drawn order, then the same two the other way round.
    half = len(ops) // 2
    for batches in ([ops[:half], ops[half:]], [ops[half:], ops[:half]]):
        states: dict[str, PathState] = {}
        logged: set[str] = set()
        for batch in batches:
            fresh = [op for op in crdt.unique_ops(batch) if op.op_id not in logged]
            logged.update(op.op_id for op in fresh)
            states.update(state.fold(states, ((op, 0) for op in fresh)))
        if state.document(states.values()) != reference_merge(ops):
            return True
    return False


def test_the_real_state_passes_the_search() -> None:
    with pytest.raises(NoSuchExample):
        find(op_sets(max_size=10), _state_differs, settings=settings(SEARCH, max_examples=300))


@pytest.mark.parametrize("name", sorted(STATE_MUTANTS))
def test_state_mutant_is_caught(name: str) -> None:
    attribute, replacement = STATE_MUTANTS[name]
    with patched(state, attribute, replacement):
        find(op_sets(max_size=10), _state_differs, settings=SEARCH)


def test_mutant_tables_are_complete() -> None:
    assert len(ENGINE_MUTANTS) == 6 and len(STATE_MUTANTS) == 6
    assert not set(itertools.chain(ENGINE_MUTANTS)) & set(STATE_MUTANTS)
