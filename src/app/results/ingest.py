"""Turning a submitted batch into engine ops: validation, stamping, dedup. No I/O.

Validation is all-or-nothing and reports every problem with a JSON Pointer into the
request body, so a client can fix a whole batch at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from src.app.results.crdt import (
    MAX_PATH_DEPTH,
    MAX_VALUE_BYTES,
    InvalidOp,
    Op,
    OpKind,
    OrderKey,
    derive_op_id,
    parse_pointer,
    validate_value,
)
from src.app.results.hlc import (
    HLCTimestamp,
    HybridLogicalClock,
    InvalidTimestamp,
    TimestampTooFarAhead,
    check_not_ahead,
)
from src.app.results.schemas import ChangeIn

MAX_PATH_LENGTH: Final = 2048
"""Longest path in characters: paths are stored with every op, so they are bounded too."""

KEY_SEPARATOR: Final = "\x1f"
"""Joins the stored order key. Ids contain no control characters and ``ts`` has a fixed
width, so the joined text sorts (by code point) exactly like the key tuple."""


@dataclass(frozen=True, slots=True)
class Problem:
    pointer: str
    detail: str


class InvalidBatch(ValueError):
    """The batch is refused as a whole; ``problems`` says where and why."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("; ".join(f"{p.pointer}: {p.detail}" for p in problems[:5]))
        self.problems = list(problems)


@dataclass(frozen=True, slots=True)
class PreparedChange:
    """A validated change, not yet stamped with the server clock."""

    op: OpKind
    path: str
    segments: tuple[str, ...]
    value: Any
    ts: str | None  # canonical as sent: strict parsing admits one text per timestamp
    op_id: str | None
    value_bytes: int  # the value's size as compact JSON (0 for a delete)
    hlc: HLCTimestamp | None = None  # ``ts`` parsed


def prepare_changes(
    changes: Sequence[ChangeIn], *, now_ms: int, max_skew_ms: int
) -> list[PreparedChange]:
    """Validate every change; raise :class:`InvalidBatch` listing all problems."""
    problems: list[Problem] = []
    prepared: list[PreparedChange] = []
    for index, change in enumerate(changes):
        where = f"/changes/{index}"
        before = len(problems)
        segments: tuple[str, ...] = ()
        value_bytes = 0
        if len(change.path) > MAX_PATH_LENGTH:
            problems.append(Problem(f"{where}/path", f"longer than {MAX_PATH_LENGTH} characters"))
        elif "\x00" in change.path:
            problems.append(Problem(f"{where}/path", "must not contain U+0000"))
        else:
            try:
                segments = parse_pointer(change.path, MAX_PATH_DEPTH)
            except InvalidOp as exc:
                problems.append(Problem(f"{where}/path", str(exc)))
        has_value = "value" in change.model_fields_set
        if change.op == "set":
            if not has_value:
                problems.append(Problem(f"{where}/value", "a 'set' needs a value (null is one)"))
            else:
                # The one walk over the value: types, U+0000, depth and size.
                try:
                    value_bytes = validate_value(change.value, MAX_VALUE_BYTES)
                except InvalidOp as exc:
                    problems.append(Problem(f"{where}/value", str(exc)))
        elif has_value:
            problems.append(Problem(f"{where}/value", "a 'delete' takes no value"))
        hlc: HLCTimestamp | None = None
        if change.ts is not None:
            try:
                hlc = check_not_ahead(change.ts, now_ms, max_skew_ms)
            except (InvalidTimestamp, TimestampTooFarAhead) as exc:
                problems.append(Problem(f"{where}/ts", str(exc)))
        if len(problems) == before:
            value = change.value if change.op == "set" else None
            prepared.append(
                PreparedChange(
                    change.op,
                    change.path,
                    segments,
                    value,
                    change.ts,
                    change.op_id,
                    value_bytes,
                    hlc,
                )
            )
    if problems:
        raise InvalidBatch(problems)
    return prepared


def stamp(
    changes: Iterable[PreparedChange],
    *,
    device_id: str,
    clock: HybridLogicalClock,
    last_applied_ts: str | None,
) -> list[Op]:
    """Build engine ops, advancing ``clock`` past every received ``ts`` and stamping the
    ones sent without. Observing the last applied ``ts`` first makes server-stamped ops
    sort after everything already merged, so they take the incremental path; observing
    the batch's latest ``ts`` (once: the clock then exceeds every one of them) makes
    them sort after the whole batch too."""
    changes = list(changes)
    if last_applied_ts is not None:
        clock.observe(last_applied_ts)
    received = [change.hlc for change in changes if change.hlc is not None]
    if received:
        clock.observe(max(received))
    ops: list[Op] = []
    for change in changes:
        ts = str(clock.tick()) if change.ts is None else change.ts
        op_id = change.op_id or derive_op_id(ts, device_id, change.path, change.op, change.value)
        ops.append(Op(change.op, change.path, change.value, ts, device_id, op_id, change.segments))
    return ops


def split_duplicates(ops: Iterable[Op], known_op_ids: set[str]) -> tuple[list[Op], int]:
    """The ops not yet received (first occurrence wins within the batch), and how many
    were duplicates. An op whose id is known is ignored, whatever its content."""
    seen = set(known_op_ids)
    fresh: list[Op] = []
    duplicates = 0
    for op in ops:
        if op.op_id in seen:
            duplicates += 1
        else:
            seen.add(op.op_id)
            fresh.append(op)
    return fresh, duplicates


def encode_order_key(key: OrderKey | None) -> str | None:
    return None if key is None else KEY_SEPARATOR.join(key)


def decode_order_key(text: str | None) -> OrderKey | None:
    if text is None:
        return None
    ts, device_id, op_id = text.split(KEY_SEPARATOR, 2)
    return (ts, device_id, op_id)


def max_key(a: OrderKey | None, b: OrderKey | None) -> OrderKey | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)
