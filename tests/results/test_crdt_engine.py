"""The LWW-tree merge engine: pointers, validation, examples and CRDT properties."""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from src.app.results.crdt import (
    MAX_PATH_DEPTH,
    MAX_VALUE_BYTES,
    MISSING,
    DocumentTooLarge,
    InvalidOp,
    InvalidPath,
    InvalidValue,
    Materialised,
    Op,
    apply_op,
    can_apply_incrementally,
    check_document_size,
    derive_op_id,
    document_size_bytes,
    format_pointer,
    merge,
    parse_pointer,
    unique_ops,
    validate_value,
)
from src.app.results.hlc import HLCTimestamp, InvalidTimestamp

# No deadline: run times vary a lot on a shared CI machine, and these are pure functions.
PROPERTY = settings(deadline=None)
# The four properties that define the CRDT get more examples.
CORE_PROPERTY = settings(max_examples=200, deadline=None)


def ts(wall: int, counter: int = 0) -> str:
    return str(HLCTimestamp(wall, counter))


T1, T2, T3, T4 = ts(1_000), ts(1_000, 1), ts(2_000), ts(3_000)


def s(path: str, value: Any, at: str, device: str = "d1", op_id: str | None = None) -> Op:
    return Op.create("set", path, value=value, ts=at, device_id=device, op_id=op_id)


def d(path: str, at: str, device: str = "d1", op_id: str | None = None) -> Op:
    return Op.create("delete", path, ts=at, device_id=device, op_id=op_id)


# --------------------------------------------------------------------- pointers


@pytest.mark.parametrize(
    ("pointer", "segments"),
    [
        ("/a", ("a",)),
        ("/a/b/c", ("a", "b", "c")),
        ("/a~1b", ("a/b",)),
        ("/m~0n", ("m~n",)),
        ("/~01", ("~1",)),  # RFC 6901: ~1 is decoded first, so ~01 is '~1' not '/'
        ("/~10", ("/0",)),
        ("/~0~1~0", ("~/~",)),
        ("/", ("",)),
        ("/a//b", ("a", "", "b")),
        ("/ ", (" ",)),
        ("/é/日本", ("é", "日本")),
        ("/" + "/".join("x" * MAX_PATH_DEPTH), ("x",) * MAX_PATH_DEPTH),
    ],
)
def test_parse_pointer(pointer: str, segments: tuple[str, ...]) -> None:
    assert parse_pointer(pointer) == segments
    assert format_pointer(segments) == pointer


@pytest.mark.parametrize(
    ("pointer", "message"),
    [
        ("", "must not be empty"),
        ("a", "must start with '/'"),
        ("a/b", "must start with '/'"),
        ("#/a", "must start with '/'"),
        ("/x/y/a~2", "invalid escape '~2' in segment 3"),
        ("/a~", "invalid escape '~' in segment 1"),
        ("/~a", "invalid escape '~a' in segment 1"),
        ("/ok/~~0", "invalid escape '~~' in segment 2"),
        ("/" + "/".join("x" * (MAX_PATH_DEPTH + 1)), "deeper than 32 levels"),
        ("/bad\ud800", "unpaired surrogate"),
        ("/nul\x00", "U\\+0000"),
    ],
)
def test_invalid_pointer(pointer: str, message: str) -> None:
    with pytest.raises(InvalidPath, match=message):
        parse_pointer(pointer)


def test_pointer_depth_is_configurable_and_non_strings_rejected() -> None:
    assert parse_pointer("/a/b", max_depth=2) == ("a", "b")
    with pytest.raises(InvalidPath, match="deeper than 1 levels"):
        parse_pointer("/a/b", max_depth=1)
    with pytest.raises(InvalidPath, match="must be a string"):
        parse_pointer(None)  # type: ignore[arg-type]
    with pytest.raises(InvalidPath):
        format_pointer(())
    assert issubclass(InvalidPath, ValueError)


segment_text = st.text(alphabet=["a", "~", "/", "0", "1", "é"], max_size=6)


@PROPERTY
@given(st.lists(segment_text, min_size=1, max_size=MAX_PATH_DEPTH))
def test_pointer_round_trip(segments: list[str]) -> None:
    pointer = format_pointer(segments)
    assert parse_pointer(pointer) == tuple(segments)
    assert format_pointer(parse_pointer(pointer)) == pointer


# --------------------------------------------------------------------- op validation


def test_op_create_fields() -> None:
    op = Op.create("set", "/a~1b/c", value={"x": [1]}, ts=T1, device_id="tab-7", op_id="o1")
    assert (op.op, op.path, op.value, op.ts, op.device_id, op.op_id) == (
        "set",
        "/a~1b/c",
        {"x": [1]},
        T1,
        "tab-7",
        "o1",
    )
    assert op.segments == ("a/b", "c")
    assert op.order_key == (T1, "tab-7", "o1")
    assert op.to_json() == {
        "op": "set",
        "path": "/a~1b/c",
        "value": {"x": [1]},
        "ts": T1,
        "device_id": "tab-7",
        "op_id": "o1",
    }
    # An HLCTimestamp is accepted and stored as its text.
    assert Op.create("delete", "/a", ts=HLCTimestamp(1_000), device_id="x").ts == T1


def test_delete_ignores_value_and_set_null_is_kept() -> None:
    deletion = Op.create("delete", "/a", value=123, ts=T1, device_id="d1")
    assert deletion.value is None
    assert "value" not in deletion.to_json()
    set_null = Op.create("set", "/a", value=None, ts=T1, device_id="d1")
    assert set_null.op == "set"
    assert set_null.to_json()["value"] is None
    assert set_null.op_id != deletion.op_id


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"op": "add"}, InvalidOp, "unknown op 'add'"),
        ({"op": "SET"}, InvalidOp, "unknown op"),
        ({"value": MISSING}, InvalidOp, "'set' requires a value"),
        ({"path": "a"}, InvalidPath, "must start with '/'"),
        ({"ts": "2026-11-30T23:10:04Z"}, InvalidTimestamp, "logical counter"),
        ({"device_id": ""}, InvalidOp, "device_id must be a non-empty string"),
        ({"device_id": 7}, InvalidOp, "device_id must be a non-empty string"),
        ({"device_id": "x" * 129}, InvalidOp, "at most 128"),
        ({"op_id": ""}, InvalidOp, "op_id must be a non-empty string"),
        ({"op_id": "x" * 129}, InvalidOp, "at most 128"),
        ({"value": float("nan")}, InvalidValue, "not a JSON value"),
        ({"value": [float("inf")]}, InvalidValue, "not a JSON value"),
        ({"value": {1: "x"}}, InvalidValue, "keys must be strings"),
        ({"value": {"a": {1, 2}}}, InvalidValue, "not a JSON value"),
        ({"value": b"bytes"}, InvalidValue, "not a JSON value"),
        ({"value": "\udc00"}, InvalidValue, "unpaired surrogate"),
        ({"value": ["ok", "a\x00"]}, InvalidValue, "U\\+0000"),
        ({"value": {"k\x00": 1}}, InvalidValue, "U\\+0000"),
        ({"device_id": "tab\x00"}, InvalidOp, "U\\+0000"),
        ({"value": "x" * MAX_VALUE_BYTES}, InvalidValue, "larger than 65536 bytes"),
        ({"value": [[[[1]]]], "max_value_depth": 3}, InvalidValue, "deeper than 3"),
    ],
)
def test_op_create_rejects(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    args: dict[str, Any] = {
        "op": "set",
        "path": "/a",
        "value": 1,
        "ts": T1,
        "device_id": "d1",
        "op_id": "o1",
    }
    args.update(kwargs)
    with pytest.raises(error, match=message):
        Op.create(args.pop("op"), args.pop("path"), **args)


def test_value_size_limit_is_exact_and_configurable() -> None:
    # '"' + n * 'x' + '"' is n + 2 bytes.
    assert validate_value("x" * (MAX_VALUE_BYTES - 2)) == MAX_VALUE_BYTES
    with pytest.raises(InvalidValue):
        validate_value("x" * (MAX_VALUE_BYTES - 1))
    # Multi-byte characters count as their UTF-8 size, not as \u escapes.
    assert validate_value("é") == 4
    assert validate_value({"a": [1, None, True]}) == len(b'{"a":[1,null,true]}')
    with pytest.raises(InvalidValue):
        validate_value([1, 2, 3], max_bytes=6)
    assert validate_value([[[1]]], max_depth=3) == 7
    # trusted=True skips the (relatively costly) value and ts checks for log rows.
    op = Op.create(
        "set", "/a", value="x" * 100, ts=T1, device_id="d", max_value_bytes=10, trusted=True
    )
    assert op.value == "x" * 100


def test_derived_op_id() -> None:
    a = derive_op_id(T1, "d1", "/a", "set", {"x": 1, "y": [1, 2]})
    assert a == derive_op_id(T1, "d1", "/a", "set", {"y": [1, 2], "x": 1})  # key order
    assert a.startswith("h:")
    assert len(a) == 66
    variants = {
        derive_op_id(T2, "d1", "/a", "set", {"x": 1, "y": [1, 2]}),
        derive_op_id(T1, "d2", "/a", "set", {"x": 1, "y": [1, 2]}),
        derive_op_id(T1, "d1", "/b", "set", {"x": 1, "y": [1, 2]}),
        derive_op_id(T1, "d1", "/a", "delete", None),
        derive_op_id(T1, "d1", "/a", "set", None),
        derive_op_id(T1, "d1", "/a", "set", {"x": 1, "y": [2, 1]}),
        derive_op_id(T1, "d1", "/a", "set", {"x": True, "y": [1, 2]}),
    }
    assert a not in variants
    assert len(variants) == 7
    # The same op resent without an id deduplicates.
    first = s("/a", {"x": 1}, T1)
    again = s("/a", {"x": 1}, T1)
    assert first.op_id == again.op_id
    assert unique_ops([first, again, s("/a", {"x": 2}, T1)]) == [first, s("/a", {"x": 2}, T1)]


# --------------------------------------------------------------------- examples


def test_newer_parent_write_hides_older_child_writes() -> None:
    ops = [s("/a/b", 1, T1), s("/a/c", 2, T2), s("/a", {"x": 1}, T3)]
    assert merge(ops) == {"a": {"x": 1}}
    assert merge([*ops, s("/a", 7, T4)]) == {"a": 7}


def test_newer_child_write_survives_older_parent_write() -> None:
    assert merge([s("/a/b", 1, T2), s("/a", 5, T1)]) == {"a": {"b": 1}}
    assert merge([s("/a/b", 2, T2), s("/a", {"x": 1}, T1)]) == {"a": {"x": 1, "b": 2}}


def test_delete_then_older_set_stays_deleted() -> None:
    assert merge([d("/a", T2), s("/a", 1, T1)]) == {}
    assert merge([d("/a", T2), s("/a/b", 1, T1), s("/c", 3, T1)]) == {"c": 3}
    # ...but a newer write below a deleted parent comes back.
    assert merge([d("/a", T1), s("/a/b", 1, T2)]) == {"a": {"b": 1}}


def test_set_null_differs_from_delete() -> None:
    assert merge([s("/a", 1, T1), s("/a", None, T2)]) == {"a": None}
    assert merge([s("/a", 1, T1), d("/a", T2)]) == {}


def test_set_through_scalar_or_list_turns_it_into_an_object() -> None:
    assert merge([s("/a", 1, T1), s("/a/b/c", 2, T2)]) == {"a": {"b": {"c": 2}}}
    assert merge([s("/a", [1, 2], T1), s("/a/0", 9, T2)]) == {"a": {"0": 9}}
    assert merge([s("/a", None, T1), s("/a/b", None, T2)]) == {"a": {"b": None}}


def test_delete_never_creates_or_converts() -> None:
    assert merge([s("/a", 1, T1), d("/a/b", T2)]) == {"a": 1}
    assert merge([d("/x/y", T1)]) == {}
    assert merge([s("/a", [1, 2], T1), d("/a/0", T2)]) == {"a": [1, 2]}
    assert merge([s("/a/b", 1, T1), d("/a/b", T2)]) == {"a": {}}


def test_ties_broken_by_device_then_op_id() -> None:
    assert merge([s("/a", "d2", T1, device="d2"), s("/a", "d1", T1, device="d1")]) == {"a": "d2"}
    assert merge([s("/a", "y", T1, op_id="b"), s("/a", "x", T1, op_id="a")]) == {"a": "y"}
    # The counter outranks the device.
    assert merge([s("/a", "late", T2, device="a"), s("/a", "zz", T1, device="zz")]) == {"a": "late"}


def test_escaped_keys_and_empty_keys() -> None:
    ops = [s("/a~1b", 1, T1), s("/m~0n/", 2, T1), s("/", 3, T1)]
    assert merge(ops) == {"a/b": 1, "m~n": {"": 2}, "": 3}


def test_values_are_copied_both_ways() -> None:
    value: dict[str, Any] = {"list": [1, {"x": 1}]}
    op = s("/a", value, T1)
    doc: dict[str, Any] = {}
    apply_op(doc, op)
    value["list"][1]["x"] = 99
    assert doc == {"a": {"list": [1, {"x": 1}]}}  # the op was copied from...
    doc["a"]["list"].append(2)
    assert merge([op]) == {"a": {"list": [1, {"x": 99}]}}  # ...and the document is separate
    first = merge([op])
    first["a"]["list"].clear()
    assert op.value == {"list": [1, {"x": 99}]}


def test_document_size() -> None:
    assert document_size_bytes({}) == 2
    assert document_size_bytes({"a": "é", "b": [1, None]}) == len('{"a":"é","b":[1,null]}'.encode())
    doc = {"a": "x" * 100}
    assert check_document_size(doc, max_bytes=108) == 108
    with pytest.raises(DocumentTooLarge):
        check_document_size(doc, max_bytes=107)
    assert check_document_size(doc) == 108


def test_incremental_rule() -> None:
    early, late = s("/a", 1, T1, op_id="o1"), s("/a", 2, T3, op_id="o2")
    assert can_apply_incrementally([late], None)
    assert can_apply_incrementally([], late.order_key)
    assert can_apply_incrementally([late], early.order_key)
    assert not can_apply_incrementally([early], late.order_key)
    assert not can_apply_incrementally([late], late.order_key)  # strictly after
    assert not can_apply_incrementally([late, early], early.order_key)

    m = Materialised()
    m.apply([late])
    assert m.last_key == late.order_key
    assert not m.can_apply([early])
    with pytest.raises(ValueError, match="rebuild"):
        m.apply([early])
    m.apply([])
    assert m.last_key == late.order_key
    rebuilt = Materialised.rebuild([late, early])
    assert rebuilt == Materialised({"a": 2}, late.order_key)
    assert Materialised.rebuild([]) == Materialised({}, None)


def test_large_log_merges_quickly() -> None:
    ops = [
        Op.create(
            "set",
            f"/assets/a{i % 500}/f{i % 7}",
            value=i,
            ts=ts(1_000 + i // 3, i % 3),
            device_id=f"dev{i % 5}",
            op_id=f"o{i}",
        )
        for i in range(20_000)
    ]
    doc = merge(reversed(ops))
    assert len(doc["assets"]) == 500
    assert doc["assets"]["a499"]["f6"] == max(
        i for i in range(20_000) if i % 500 == 499 and i % 7 == 6
    )


# --------------------------------------------------------------------- properties

SEGMENTS = ["a", "b", "c", "x/y"]
DEVICES = ["d1", "d2", "d3"]

# A fixed pool keeps generation cheap (the engine treats values as opaque apart from
# "object or not"); objects use the path alphabet so later writes land inside them.
JSON_POOL: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -7,
    0.5,
    "",
    "a",
    "é/~",
    [],
    [1, None, "b"],
    [{"a": 1}, [2]],
    {},
    {"a": None},
    {"a": 1, "b": [1, 2]},
    {"b": {"c": "deep", "a": {}}},
    {"x/y": {"a": [None]}, "c": False},
]
json_values = st.sampled_from(JSON_POOL) | st.recursive(
    st.none() | st.integers(-2, 2) | st.text(alphabet="ab", max_size=2),
    lambda children: (
        st.lists(children, max_size=2)
        | st.dictionaries(st.sampled_from(SEGMENTS), children, max_size=2)
    ),
    max_leaves=3,
)


# Every path of depth 1-4 over SEGMENTS, each depth equally likely (so parents and
# children collide often). One draw per path is far cheaper than drawing segments.
PATHS = [
    format_pointer(segments)
    for depth in range(1, 5)
    for segments in itertools.product(SEGMENTS, repeat=depth)
    for _ in range(len(SEGMENTS) ** (4 - depth))
]
# Equal wall times and equal counters are common on purpose.
TIMESTAMPS = [ts(wall, counter) for wall in (1_000, 1_001, 1_002) for counter in (0, 1, 2)]


def _build_ops(raw: list[tuple[Any, ...]], id_prefix: str) -> list[Op]:
    return [
        Op.create(
            kind,
            path,
            value=value,
            ts=at,
            device_id=device,
            op_id=f"{id_prefix}{i:02d}" if explicit_id else None,
        )
        for i, (path, at, device, explicit_id, (kind, value)) in enumerate(raw)
    ]


def op_sets(max_size: int = 14, id_prefix: str = "id") -> st.SearchStrategy[list[Op]]:
    """Op sets with many overlaps: a small key alphabet, few clocks, few devices.

    Ops with explicit ids get unique ones (as ingestion guarantees); ops without derive
    theirs, so two identical ops drawn twice are genuinely the same op.
    """
    change = st.tuples(st.just("set"), json_values) | st.just(("delete", None))
    raw_op = st.tuples(
        st.sampled_from(PATHS),
        st.sampled_from(TIMESTAMPS),
        st.sampled_from(DEVICES),
        st.booleans(),
        change,
    )
    return st.lists(raw_op, max_size=max_size).map(lambda raw: _build_ops(raw, id_prefix))


def reference_merge(ops: list[Op]) -> dict[str, Any]:
    """Written independently of the engine: functional, recursive, copy.deepcopy."""
    seen: dict[str, Op] = {}
    for op in ops:
        seen.setdefault(op.op_id, op)
    ordered = sorted(seen.values(), key=lambda o: (o.ts, o.device_id, o.op_id))

    def write(node: Any, keys: list[str], value: Any) -> dict[str, Any]:
        out = dict(node) if isinstance(node, dict) else {}
        out[keys[0]] = (
            copy.deepcopy(value) if len(keys) == 1 else write(out.get(keys[0]), keys[1:], value)
        )
        return out

    def remove(node: Any, keys: list[str]) -> Any:
        if not isinstance(node, dict) or keys[0] not in node:
            return node
        out = dict(node)
        if len(keys) == 1:
            del out[keys[0]]
        else:
            out[keys[0]] = remove(out[keys[0]], keys[1:])
        return out

    doc: dict[str, Any] = {}
    for op in ordered:
        keys = [k.replace("~1", "/").replace("~0", "~") for k in op.path.split("/")[1:]]
        doc = write(doc, keys, op.value) if op.op == "set" else remove(doc, keys)
    return doc


@CORE_PROPERTY
@given(st.data())
def test_every_permutation_gives_the_same_document(data: st.DataObject) -> None:
    ops = data.draw(op_sets())
    expected = merge(ops)
    assert merge(data.draw(st.permutations(ops))) == expected
    assert merge(reversed(ops)) == expected


@CORE_PROPERTY
@given(st.data())
def test_duplicates_do_not_change_the_document(data: st.DataObject) -> None:
    ops = data.draw(op_sets())
    # Any subset repeated, anywhere: a boolean per op says whether it is resent.
    resent = data.draw(st.lists(st.booleans(), min_size=len(ops), max_size=len(ops)))
    repeats = [op for op, again in zip(ops, resent, strict=True) if again]
    shuffled = data.draw(st.permutations([*ops, *repeats]))
    assert merge(shuffled) == merge(ops)
    assert merge([*ops, *ops]) == merge(ops)


@CORE_PROPERTY
@given(st.data())
def test_batching_with_incremental_rule_matches_full_merge(data: st.DataObject) -> None:
    ops = data.draw(st.permutations(data.draw(op_sets(max_size=18))))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(ops)), max_size=5)))
    bounds = [0, *cuts, len(ops)]
    batches = [ops[lo:hi] for lo, hi in itertools.pairwise(bounds)]
    # Sometimes resend a batch, as a retrying device would.
    batches += data.draw(st.lists(st.sampled_from(batches), max_size=2))

    log: list[Op] = []
    logged: set[str] = set()
    state = Materialised()
    for batch in batches:
        new = [op for op in unique_ops(batch) if op.op_id not in logged]  # ingestion dedup
        log.extend(new)
        logged.update(op.op_id for op in new)
        if state.can_apply(new):
            state.apply(new)
        else:
            state = Materialised.rebuild(log)
        assert state.document == merge(log)
    assert state.document == merge(ops)
    assert state == Materialised.rebuild(ops)


@CORE_PROPERTY
@given(op_sets(max_size=20))
def test_merge_matches_naive_reference(ops: list[Op]) -> None:
    assert merge(ops) == reference_merge(ops)


@PROPERTY
@given(op_sets())
def test_sorted_batches_are_always_incremental(ops: list[Op]) -> None:
    ordered = sorted(unique_ops(ops), key=lambda o: o.order_key)
    state = Materialised()
    for i in range(0, len(ordered), 3):
        batch = ordered[i : i + 3]
        assert state.can_apply(batch)
        state.apply(batch)
    assert state.document == merge(ops)


@PROPERTY
@given(op_sets(id_prefix="a"), op_sets(id_prefix="b"))
def test_merge_is_union_based(a: list[Op], b: list[Op]) -> None:
    """merge(A | B) is the same whether A, B arrive together, apart, or twice."""
    assert merge([*a, *b]) == merge([*b, *a]) == merge([*a, *b, *a])


def test_documents_survive_a_json_round_trip() -> None:
    ops = [s("/a/b", [1, {"c": None}], T1), s("/a/d", 0.5, T2), s("/e", "é", T3)]
    doc = merge(ops)
    assert json.loads(json.dumps(doc)) == doc
