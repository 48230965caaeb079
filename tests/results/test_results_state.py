"""The per-path state gives exactly the full-log merge, whatever the order of arrival."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from src.app.results.crdt import Op, merge, unique_ops
from src.app.results.ingest import encode_order_key
from src.app.results.state import (
    PathState,
    document,
    document_of_rows,
    fold,
    fold_op,
    state_ops,
)
from tests.results.test_crdt_engine import T1, T2, T3, d, op_sets, reference_merge, s

CORE_PROPERTY = settings(max_examples=200, deadline=None)


def folded(batches: list[list[Op]]) -> dict[str, PathState]:
    """Ingest batches as the server does: drop ops already logged, fold the rest."""
    states: dict[str, PathState] = {}
    logged: set[str] = set()
    for batch in batches:
        fresh = [op for op in unique_ops(batch) if op.op_id not in logged]
        logged.update(op.op_id for op in fresh)
        states.update(fold(states, ((op, 0) for op in fresh)))
    return states


def test_a_set_beneath_survives_a_later_delete_of_it() -> None:
    """Newest-op-per-path would give {"a": 5}: the set of /a/b turned /a into an object."""
    ops = [s("/a", 5, T1), s("/a/b", 1, T2), d("/a/b", T3)]
    assert document(folded([ops]).values()) == merge(ops) == {"a": {}}


def test_late_ops_land_in_the_past() -> None:
    newest = [s("/a/b", 1, T3)]
    late = [s("/a", {"c": 2}, T1), d("/a/b", T2)]
    assert document(folded([newest, late]).values()) == {"a": {"c": 2, "b": 1}}


def test_older_delete_is_forgotten_and_newer_one_kept() -> None:
    state = fold_op(None, d("/a", T1))
    state = fold_op(state, s("/a", 1, T2), 1)
    assert (state.set is not None, state.delete) == (True, None)
    state = fold_op(state, d("/a", T3))
    assert state.delete is not None and state.set is not None
    assert fold_op(state, d("/a", T2, op_id="older")) is state


@CORE_PROPERTY
@given(st.data())
def test_state_document_equals_full_log_merge(data: st.DataObject) -> None:
    ops = data.draw(op_sets(max_size=18))
    order = data.draw(st.permutations(ops))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(order)), max_size=5)))
    bounds = [0, *cuts, len(order)]
    batches = [order[lo:hi] for lo, hi in itertools.pairwise(bounds)]
    # Resent batches, as retrying devices do, at any point.
    batches += data.draw(st.lists(st.sampled_from(batches), max_size=2))
    states = folded(data.draw(st.permutations(batches)))
    assert document(states.values()) == reference_merge(ops) == merge(ops)


def stored_rows(states: dict[str, PathState]) -> list[tuple[str, Any, Any, Any]]:
    """The state as the database stores it: one row per path, joined order keys."""
    return [
        (
            path,
            encode_order_key(state.set.order_key) if state.set else None,
            state.set.value if state.set else None,
            encode_order_key(state.delete.order_key) if state.delete else None,
        )
        for path, state in states.items()
    ]


@CORE_PROPERTY
@given(st.data())
def test_document_of_stored_rows_equals_document_of_state(data: st.DataObject) -> None:
    """The lean builder every read and full write response uses is the same merge."""
    ops = data.draw(op_sets(max_size=18))
    batches = [ops[i : i + 3] for i in range(0, len(ops), 3)]
    states = folded(data.draw(st.permutations(batches)))
    rows = data.draw(st.permutations(stored_rows(states)))
    assert document_of_rows(rows) == document(states.values()) == merge(ops)


def test_document_of_stored_rows_copies_values() -> None:
    """A set beneath a stored object value must not write into the row's value."""
    value = {"c": 1}
    states = folded([[s("/a", value, T1), s("/a/b", 2, T2)]])
    assert document_of_rows(stored_rows(states)) == {"a": {"c": 1, "b": 2}}
    assert value == {"c": 1}


@CORE_PROPERTY
@given(op_sets(max_size=16, id_prefix="a"), op_sets(max_size=16, id_prefix="b"))
def test_state_is_a_function_of_the_op_set(a: list[Op], b: list[Op]) -> None:
    """Not only the document: the remembered registers themselves do not depend on order."""
    one = folded([a, b])
    other = folded([list(reversed(b)), a, a])
    assert one == other
    assert document(one.values()) == merge([*a, *b])


@settings(max_examples=100, deadline=None)
@given(op_sets(max_size=16))
def test_state_holds_at_most_two_ops_per_path(ops: list[Op]) -> None:
    states = folded([ops])
    for path, state in states.items():
        kept = state_ops([state])
        assert 1 <= len(kept) <= 2 and all(op.path == path for op in kept)
        if state.set is not None and state.delete is not None:
            assert state.delete.order_key > state.set.order_key


def test_value_sizes_follow_the_set_register() -> None:
    states = fold({}, [(s("/a", "xx", T2), 4), (s("/a", "x", T1), 3)])
    assert states["/a"].set_bytes == 4
    assert states["/a"].set is not None and states["/a"].set.value == "xx"


def test_document_of_nothing_is_empty() -> None:
    empty: list[Any] = []
    assert document(empty) == {}
