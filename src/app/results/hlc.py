"""Hybrid logical clock (Kulkarni et al., 2014) and its text timestamps.

A timestamp is ``(wall_ms, counter)``: UTC wall time in milliseconds plus a logical
counter that orders events sharing a millisecond. Its text form
``YYYY-MM-DDTHH:MM:SS.mmmZ/NNNN`` has fixed width, so comparing the text compares the
timestamps; the result-sync CRDT relies on that to order ops as plain strings.

Pure standard library: no I/O apart from reading the system clock by default.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

__all__ = [
    "DEFAULT_MAX_SKEW_MS",
    "MAX_COUNTER",
    "MAX_WALL_MS",
    "MIN_WALL_MS",
    "HLCTimestamp",
    "HybridLogicalClock",
    "InvalidTimestamp",
    "TimestampTooFarAhead",
    "check_not_ahead",
    "parse_timestamp",
    "wall_clock_ms",
]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)

MAX_COUNTER: Final = 9999
"""The counter is written with exactly 4 digits."""

MIN_WALL_MS: Final = 0
"""1970-01-01T00:00:00.000Z; earlier instants are not accepted."""

MAX_WALL_MS: Final = (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - _EPOCH) // _ONE_MS
"""9999-12-31T23:59:59.999Z, the last instant a 4-digit year can express."""

DEFAULT_MAX_SKEW_MS: Final = 5 * 60 * 1000
"""How far ahead of the server clock a client timestamp may be (docs/api/results-sync.md)."""

# [0-9] rather than \d: \d also matches non-ASCII digits such as '٣'.
_TS_RE: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})\.([0-9]{3})Z/([0-9]{4})"
)
_WALL_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
_COUNTER_RE: Final = re.compile(r"[0-9]{4}")
_FORMAT_HINT: Final = "YYYY-MM-DDTHH:MM:SS.mmmZ/NNNN"


class InvalidTimestamp(ValueError):
    """A timestamp that is not a well-formed HLC timestamp; the message is client-safe."""


class TimestampTooFarAhead(ValueError):
    """A timestamp further ahead of the server clock than the allowed skew."""


def _excerpt(text: str, limit: int = 40) -> str:
    """Quote client input in an error message without echoing a huge string back."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, order=True, slots=True)
class HLCTimestamp:
    """One HLC reading; instances order by ``(wall_ms, counter)``, like their text."""

    wall_ms: int
    counter: int = 0

    def __post_init__(self) -> None:
        if not _is_int(self.wall_ms) or not MIN_WALL_MS <= self.wall_ms <= MAX_WALL_MS:
            raise InvalidTimestamp(
                f"wall time must be an integer number of ms in [{MIN_WALL_MS}, {MAX_WALL_MS}],"
                f" got {self.wall_ms!r}"
            )
        if not _is_int(self.counter) or not 0 <= self.counter <= MAX_COUNTER:
            raise InvalidTimestamp(
                f"logical counter must be an integer in [0, {MAX_COUNTER}], got {self.counter!r}"
            )

    def format(self) -> str:
        """The canonical text form ``YYYY-MM-DDTHH:MM:SS.mmmZ/NNNN``."""
        dt = _EPOCH + timedelta(milliseconds=self.wall_ms)
        # Fields are padded by hand: strftime's %Y does not zero-pad on every platform.
        return (
            f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T"
            f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}.{dt.microsecond // 1000:03d}Z"
            f"/{self.counter:04d}"
        )

    def __str__(self) -> str:
        return self.format()

    @classmethod
    def parse(cls, text: str) -> HLCTimestamp:
        """Parse the canonical text form strictly (exact width, real date, UTC ``Z``).

        Strictness matters beyond validation: since only one text maps to each
        timestamp, ops can be ordered by comparing their ``ts`` strings.
        """
        if not isinstance(text, str):
            raise InvalidTimestamp(f"must be a string of the form {_FORMAT_HINT}")
        match = _TS_RE.fullmatch(text)
        if match is None:
            raise InvalidTimestamp(_explain_malformed(text))
        year, month, day, hour, minute, second, millis, counter = map(int, match.groups())
        try:
            dt = datetime(year, month, day, hour, minute, second, millis * 1000, tzinfo=UTC)
        except ValueError as exc:
            raise InvalidTimestamp(
                f"not a real UTC date and time ({exc}): {_excerpt(text)}"
            ) from None
        if dt < _EPOCH:
            raise InvalidTimestamp(f"must not be before 1970-01-01T00:00:00.000Z: {_excerpt(text)}")
        return cls((dt - _EPOCH) // _ONE_MS, counter)


def _explain_malformed(text: str) -> str:
    """Say which half of a malformed timestamp is wrong, so a client can fix it."""
    wall, slash, counter = text.rpartition("/")
    if not slash:
        return f"missing the '/NNNN' logical counter; expected {_FORMAT_HINT}, got {_excerpt(text)}"
    if _COUNTER_RE.fullmatch(counter) is None:
        return f"logical counter must be exactly 4 digits (0000-9999), got {_excerpt(counter)}"
    if _WALL_RE.fullmatch(wall) is None:
        return (
            "wall time must be UTC to the millisecond, YYYY-MM-DDTHH:MM:SS.mmmZ,"
            f" got {_excerpt(wall)}"
        )
    return f"expected {_FORMAT_HINT}, got {_excerpt(text)}"  # pragma: no cover - defensive


def parse_timestamp(text: str) -> HLCTimestamp:
    """Function form of :meth:`HLCTimestamp.parse`."""
    return HLCTimestamp.parse(text)


def wall_clock_ms() -> int:
    """Current UTC time in whole milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


def _next(wall_ms: int, counter: int) -> HLCTimestamp:
    """Build ``(wall_ms, counter)``, carrying a counter overflow into the wall time.

    The text form has room for 4 counter digits only. More than 10,000 events within
    one millisecond (or a long run of ticks while the physical clock stands still or
    runs behind) would overflow it, so we move the logical wall time forward by 1 ms
    and restart the counter. That keeps the clock strictly monotonic and the text
    sortable; the price is that the HLC runs at most a little ahead of physical time,
    which HLC already tolerates (it is bounded by the event rate, and the server's
    skew check tolerates minutes).
    """
    if counter > MAX_COUNTER:
        return HLCTimestamp(wall_ms + 1, 0)
    return HLCTimestamp(wall_ms, counter)


class HybridLogicalClock:
    """A thread-safe HLC.

    ``now_ms`` is injectable so tests can drive the wall clock (including making it
    stand still or go backwards). ``last`` seeds the clock, e.g. with the highest
    timestamp already stored, so a restarted server never issues a smaller one.
    """

    def __init__(
        self,
        now_ms: Callable[[], int] = wall_clock_ms,
        *,
        last: HLCTimestamp | None = None,
    ) -> None:
        self._now_ms = now_ms
        self._last = last
        self._lock = threading.Lock()

    @property
    def last(self) -> HLCTimestamp | None:
        """The most recent timestamp issued or observed, or ``None`` before the first."""
        with self._lock:
            return self._last

    def _physical(self) -> int:
        # A broken clock reading before the epoch is treated as the epoch.
        return max(self._now_ms(), MIN_WALL_MS)

    def tick(self) -> HLCTimestamp:
        """Timestamp a local or send event: strictly greater than anything before it."""
        with self._lock:
            now = self._physical()
            last = self._last
            if last is None or now > last.wall_ms:
                new = HLCTimestamp(now, 0)
            else:
                new = _next(last.wall_ms, last.counter + 1)
            self._last = new
            return new

    def observe(self, remote: HLCTimestamp | str) -> HLCTimestamp:
        """Timestamp a receive event: strictly greater than both ``remote`` and local.

        Callers should reject timestamps too far ahead (:func:`check_not_ahead`) before
        observing them, or one bad clock drags this one into the future.
        """
        if isinstance(remote, str):
            remote = HLCTimestamp.parse(remote)
        with self._lock:
            now = self._physical()
            last = self._last
            local_wall = last.wall_ms if last is not None else MIN_WALL_MS - 1
            wall = max(local_wall, remote.wall_ms, now)
            if last is not None and wall == last.wall_ms == remote.wall_ms:
                new = _next(wall, max(last.counter, remote.counter) + 1)
            elif last is not None and wall == last.wall_ms:
                new = _next(wall, last.counter + 1)
            elif wall == remote.wall_ms:
                new = _next(wall, remote.counter + 1)
            else:
                new = HLCTimestamp(wall, 0)
            self._last = new
            return new


def check_not_ahead(
    ts: HLCTimestamp | str,
    now_ms: int,
    max_skew_ms: int = DEFAULT_MAX_SKEW_MS,
) -> HLCTimestamp:
    """Reject ``ts`` if its wall time is more than ``max_skew_ms`` after ``now_ms``.

    Last-writer-wins favours the latest clock, so a device whose clock runs ahead would
    win every conflict for as long as it stays ahead; capping the skew bounds that.
    Returns the parsed timestamp for convenience.
    """
    parsed = HLCTimestamp.parse(ts) if isinstance(ts, str) else ts
    ahead = parsed.wall_ms - now_ms
    if ahead > max_skew_ms:
        raise TimestampTooFarAhead(
            f"is {ahead / 1000:.3f} s ahead of the server clock"
            f" (at most {max_skew_ms / 1000:g} s allowed)"
        )
    return parsed
