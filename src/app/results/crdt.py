"""Last-writer-wins JSON tree keyed by JSON Pointer paths: the results-sync merge engine.

The definition (docs/api/results-sync.md): the document is what you get by applying every
op of a session, deduplicated by ``op_id`` and sorted by ``(ts, device_id, op_id)``,
to ``{}``. Because the result depends only on the *set* of ops, merging is
commutative, associative and idempotent by construction: arrival order, duplicates
and batching cannot change it. Everything else here (incremental application, the
validation helpers) is an optimisation or a guard around that definition.

Pure standard library, no I/O.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeAlias

from .hlc import HLCTimestamp

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "MAX_ID_LENGTH",
    "MAX_PATH_DEPTH",
    "MAX_VALUE_BYTES",
    "MAX_VALUE_DEPTH",
    "MISSING",
    "DocumentTooLarge",
    "InvalidOp",
    "InvalidPath",
    "InvalidValue",
    "Materialised",
    "Op",
    "OpKind",
    "OrderKey",
    "apply_op",
    "apply_ops",
    "can_apply_incrementally",
    "check_document_size",
    "derive_op_id",
    "document_size_bytes",
    "format_pointer",
    "merge",
    "parse_pointer",
    "unique_ops",
    "validate_value",
]

MAX_PATH_DEPTH: Final = 32
"""Most segments a path may have."""

MAX_VALUE_BYTES: Final = 64 * 1024
"""Largest ``set`` value, measured as compact UTF-8 JSON (the API's limit: 64 KiB)."""

MAX_VALUE_DEPTH: Final = 64
"""Deepest nesting of arrays/objects inside one value.

Not an API limit: it keeps the (recursive) copy and encode steps far from Python's
recursion limit. 64 levels is far beyond any real result record.
"""

MAX_DOCUMENT_BYTES: Final = 5 * 1024 * 1024
"""Largest merged document, as compact UTF-8 JSON (the API's limit: 5 MiB)."""

MAX_ID_LENGTH: Final = 128
"""Longest ``device_id`` / ``op_id`` (the op log stores them in 128-character columns)."""

OpKind: TypeAlias = Literal["set", "delete"]
OrderKey: TypeAlias = tuple[str, str, str]
"""``(ts, device_id, op_id)``: the total order of ops, compared as Python strings."""

_OP_KINDS: Final[frozenset[str]] = frozenset({"set", "delete"})
_BAD_ESCAPE: Final = re.compile(r"~(?![01])")
_NUL_MESSAGE: Final = "contains the character U+0000, which cannot be stored"


class _Missing(enum.Enum):
    MISSING = enum.auto()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing.MISSING
"""Marks "no ``value`` given", which differs from a JSON ``null`` value (``None``)."""


class InvalidOp(ValueError):
    """An op the server must reject (422); the message is client-safe."""


class InvalidPath(InvalidOp):
    """A path that is not an acceptable JSON Pointer."""


class InvalidValue(InvalidOp):
    """A ``set`` value that is not JSON, is too large, or is nested too deeply."""


class DocumentTooLarge(ValueError):
    """The merged document would exceed the size limit."""


def _compact_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
        "utf-8"
    )


# --------------------------------------------------------------------------- paths


def parse_pointer(path: str, max_depth: int = MAX_PATH_DEPTH) -> tuple[str, ...]:
    """Split an RFC 6901 JSON Pointer into unescaped segments.

    The empty pointer (the whole document) is refused: the root is always an object
    and cannot be set or deleted. Empty segments are legal (``"/"`` is the key ``""``).
    """
    if not isinstance(path, str):
        raise InvalidPath("must be a string")
    if not path:
        raise InvalidPath("must not be empty: the document root cannot be set or deleted")
    if not path.startswith("/"):
        raise InvalidPath("must start with '/'")
    raw = path[1:].split("/")
    if len(raw) > max_depth:
        raise InvalidPath(f"deeper than {max_depth} levels")
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidPath("contains an unpaired surrogate, which is not valid Unicode") from None
    if "\x00" in path:
        raise InvalidPath(_NUL_MESSAGE)
    segments: list[str] = []
    for index, segment in enumerate(raw, start=1):
        if "~" in segment:
            bad = _BAD_ESCAPE.search(segment)
            if bad is not None:
                escape = segment[bad.start() : bad.start() + 2]
                raise InvalidPath(f"invalid escape {escape!r} in segment {index}")
            # RFC 6901 section 4: '~1' first, then '~0', so '~01' becomes '~1', not '/'.
            segment = segment.replace("~1", "/").replace("~0", "~")
        segments.append(segment)
    return tuple(segments)


def format_pointer(segments: Iterable[str]) -> str:
    """Inverse of :func:`parse_pointer`: escape and join segments into a pointer."""
    parts = [s.replace("~", "~0").replace("/", "~1") for s in segments]
    if not parts:
        raise InvalidPath("must not be empty: the document root cannot be set or deleted")
    return "/" + "/".join(parts)


# --------------------------------------------------------------------------- values


def validate_value(
    value: Any,
    max_bytes: int = MAX_VALUE_BYTES,
    max_depth: int = MAX_VALUE_DEPTH,
) -> int:
    """Check that ``value`` is plain JSON within the limits; return its encoded size.

    Plain JSON means ``None``, ``bool``, ``int``, finite ``float``, ``str``, ``list``
    and ``dict`` with ``str`` keys: anything else would not survive a round trip
    through the database unchanged, so two replicas could disagree. Strings may not
    contain U+0000, which PostgreSQL cannot store in text or ``jsonb``.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth >= max_depth:
                raise InvalidValue(f"nested deeper than {max_depth} levels")
            for key, child in item.items():
                if not isinstance(key, str):
                    raise InvalidValue("object keys must be strings")
                if "\x00" in key:
                    raise InvalidValue(_NUL_MESSAGE)
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            if depth >= max_depth:
                raise InvalidValue(f"nested deeper than {max_depth} levels")
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            if "\x00" in item:
                raise InvalidValue(_NUL_MESSAGE)
        elif item is not None and not isinstance(item, int | float):
            raise InvalidValue(f"not a JSON value (got {type(item).__name__})")
    try:
        size = len(_compact_json(value))
    except UnicodeEncodeError:
        raise InvalidValue("contains an unpaired surrogate, which is not valid Unicode") from None
    except ValueError as exc:  # NaN/Infinity, or an int too long to print
        raise InvalidValue(f"not a JSON value ({exc})") from None
    if size > max_bytes:
        raise InvalidValue(f"larger than {max_bytes} bytes as JSON ({size} bytes)")
    return size


def copy_json(value: Any) -> Any:
    """Deep copy of a JSON value; much faster than ``copy.deepcopy`` for this case."""
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    return value


def document_size_bytes(document: Any) -> int:
    """Size of ``document`` as compact UTF-8 JSON, the measure for the 5 MiB limit."""
    return len(_compact_json(document))


def check_document_size(document: Any, max_bytes: int = MAX_DOCUMENT_BYTES) -> int:
    """Raise :class:`DocumentTooLarge` if the document is over ``max_bytes``; return size."""
    size = document_size_bytes(document)
    if size > max_bytes:
        raise DocumentTooLarge(f"merged document would be {size} bytes, over {max_bytes}")
    return size


# --------------------------------------------------------------------------- ops


def derive_op_id(ts: str, device_id: str, path: str, op: str, value: Any) -> str:
    """Deterministic id for an op sent without ``op_id``.

    Hashing ``(ts, device, path, op, value)`` with sorted keys means the same op
    resent without an id deduplicates, whatever order its object keys came in.
    """
    canonical = json.dumps(
        [ts, device_id, path, op, value],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode("utf-8")
    return "h:" + hashlib.sha256(canonical).hexdigest()


@dataclass(frozen=True, slots=True)
class Op:
    """One change. Build it with :meth:`create`, which validates and parses the path.

    ``value`` is ``None`` for a delete; a ``set`` of JSON ``null`` also has ``None`` but
    is a different op (``op`` says which). ``segments`` caches the parsed path so a
    rebuild over a long log does not parse pointers again.
    """

    op: OpKind
    path: str
    value: Any = field(hash=False)
    ts: str
    device_id: str
    op_id: str
    segments: tuple[str, ...] = field(repr=False, compare=False)

    @property
    def order_key(self) -> OrderKey:
        """The total order: later keys win."""
        return (self.ts, self.device_id, self.op_id)

    @classmethod
    def create(
        cls,
        op: str,
        path: str,
        *,
        ts: str | HLCTimestamp,
        device_id: str,
        op_id: str | None = None,
        value: Any = MISSING,
        max_path_depth: int = MAX_PATH_DEPTH,
        max_value_bytes: int = MAX_VALUE_BYTES,
        max_value_depth: int = MAX_VALUE_DEPTH,
        max_id_length: int = MAX_ID_LENGTH,
        trusted: bool = False,
    ) -> Op:
        """Validate and build an op; ``op_id=None`` derives one (:func:`derive_op_id`).

        ``ts`` must already be a canonical HLC timestamp (the skew check is the caller's,
        as it needs the server clock). A delete ignores ``value``.

        ``trusted=True`` is for rows re-read from the op log, which were validated when
        accepted: it skips the timestamp and value checks (the costly part of rebuilding
        from a long log) and only parses the path, which merging needs anyway.
        """
        if op not in _OP_KINDS:
            raise InvalidOp(f"unknown op {op!r}: must be 'set' or 'delete'")
        kind: OpKind = "set" if op == "set" else "delete"
        segments = parse_pointer(path, max_path_depth)
        if isinstance(ts, HLCTimestamp):
            ts_text = ts.format()
        else:
            if not trusted:
                # Strict parsing admits one text per timestamp, so the text itself is
                # canonical and ops can be ordered by comparing it.
                HLCTimestamp.parse(ts)
            ts_text = ts
        _check_id("device_id", device_id, max_id_length)
        if kind == "set":
            if value is MISSING:
                raise InvalidOp("'set' requires a value")
            if not trusted:
                validate_value(value, max_value_bytes, max_value_depth)
        else:
            value = None
        if op_id is None:
            op_id = derive_op_id(ts_text, device_id, path, kind, value)
        else:
            _check_id("op_id", op_id, max_id_length)
        return cls(kind, path, value, ts_text, device_id, op_id, segments)

    def to_json(self) -> dict[str, Any]:
        """The wire form ``{op, path, value?, ts, device_id, op_id}`` (no value on delete)."""
        out: dict[str, Any] = {"op": self.op, "path": self.path}
        if self.op == "set":
            out["value"] = self.value
        out.update(ts=self.ts, device_id=self.device_id, op_id=self.op_id)
        return out


def _check_id(name: str, value: object, max_length: int) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidOp(f"{name} must be a non-empty string")
    if len(value) > max_length:
        raise InvalidOp(f"{name} must be at most {max_length} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidOp(f"{name} contains an unpaired surrogate") from None
    if "\x00" in value:
        raise InvalidOp(f"{name} {_NUL_MESSAGE}")


def apply_op(document: dict[str, Any], op: Op) -> None:
    """Apply one op to ``document`` in place.

    ``set`` stores a copy of the value (so later edits to either side do not leak) and
    replaces any non-object on the way, including arrays, with ``{}``: children of a
    newer write must survive an older scalar write on their parent. ``delete`` only
    removes what exists; it never creates objects.
    """
    *parents, last = op.segments
    node = document
    if op.op == "set":
        for segment in parents:
            child = node.get(segment)
            if not isinstance(child, dict):
                child = {}
                node[segment] = child
            node = child
        node[last] = copy_json(op.value)
    else:
        for segment in parents:
            child = node.get(segment)
            if not isinstance(child, dict):
                return
            node = child
        node.pop(last, None)


def unique_ops(ops: Iterable[Op]) -> list[Op]:
    """Drop ops whose ``op_id`` was already seen (the first occurrence wins).

    Ops sharing an ``op_id`` are taken to be the same op; ingestion guarantees the log
    never holds two different ops under one id, which is what keeps merging
    order-independent.
    """
    seen: set[str] = set()
    out: list[Op] = []
    for op in ops:
        if op.op_id not in seen:
            seen.add(op.op_id)
            out.append(op)
    return out


def _sort_key(op: Op) -> OrderKey:
    return (op.ts, op.device_id, op.op_id)


def apply_ops(document: dict[str, Any], ops: Iterable[Op]) -> OrderKey | None:
    """Dedup, sort and apply ``ops`` to ``document`` in place; return the largest key.

    Only equals a full merge when every op sorts after everything already applied
    (see :func:`can_apply_incrementally`); returns ``None`` if ``ops`` is empty.
    """
    batch = sorted(unique_ops(ops), key=_sort_key)
    for op in batch:
        apply_op(document, op)
    return batch[-1].order_key if batch else None


def merge(ops: Iterable[Op]) -> dict[str, Any]:
    """The document defined by a set of ops: dedup by id, sort, apply to ``{}``."""
    document: dict[str, Any] = {}
    apply_ops(document, ops)
    return document


def can_apply_incrementally(new_ops: Iterable[Op], last_key: OrderKey | None) -> bool:
    """True when applying ``new_ops`` on top of the materialised document equals a rebuild.

    That holds when each new op sorts strictly after ``last_key``, the largest key
    already applied (``None``: nothing applied yet). Otherwise an op lands "in the
    past" and may be hidden by, or have to hide, ops already applied, so the caller
    rebuilds with :func:`merge` over the whole log. ``new_ops`` must already exclude
    ops the log holds (same ``op_id``).
    """
    if last_key is None:
        return True
    return all(op.order_key > last_key for op in new_ops)


@dataclass(slots=True)
class Materialised:
    """A cached document plus the key of the last op applied to it.

    Typical use: ``if m.can_apply(new): m.apply(new) else: m = Materialised.rebuild(log)``
    where ``log`` already includes ``new``. ``apply`` mutates ``document``; if the caller
    then rejects the request (e.g. document too large), it must discard this object.
    """

    document: dict[str, Any] = field(default_factory=dict)
    last_key: OrderKey | None = None

    @classmethod
    def rebuild(cls, ops: Iterable[Op]) -> Materialised:
        """Materialise from the full op log."""
        document: dict[str, Any] = {}
        last_key = apply_ops(document, ops)
        return cls(document, last_key)

    def can_apply(self, new_ops: Sequence[Op]) -> bool:
        """See :func:`can_apply_incrementally`."""
        return can_apply_incrementally(new_ops, self.last_key)

    def apply(self, new_ops: Sequence[Op]) -> None:
        """Apply ops that all sort after ``last_key``; raise ``ValueError`` otherwise."""
        if not self.can_apply(new_ops):
            raise ValueError("ops sort before the last applied op: rebuild from the log")
        key = apply_ops(self.document, new_ops)
        if key is not None:
            self.last_key = key
