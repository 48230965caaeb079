"""HTTP Range requests (RFC 9110 section 14) for one byte range. Pure."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


class Unsatisfiable(Exception):
    """A syntactically valid range that selects no byte of the representation (416)."""


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range ``header`` asks for, or None to send the whole representation.

    Headers we do not serve as ranges (another unit, several ranges, bad syntax) are
    ignored, as RFC 9110 allows: the client then gets 200 with every byte.
    """
    if header is None:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    first, last = first.strip(), last.strip()
    if (first and not first.isdigit()) or (last and not last.isdigit()) or not (first or last):
        return None
    if not first:  # suffix: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable
        return ByteRange(max(size - suffix, 0), size - 1)
    start = int(first)
    if last and int(last) < start:
        return None  # invalid: ignored
    if start >= size:
        raise Unsatisfiable
    end = min(int(last), size - 1) if last else size - 1
    return ByteRange(start, end)
