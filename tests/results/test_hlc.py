"""Hybrid logical clock: text format, ordering, tick/observe rules, skew check."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from src.app.results.hlc import (
    DEFAULT_MAX_SKEW_MS,
    MAX_COUNTER,
    MAX_WALL_MS,
    HLCTimestamp,
    HybridLogicalClock,
    InvalidTimestamp,
    TimestampTooFarAhead,
    check_not_ahead,
    parse_timestamp,
)

# No deadline: run times vary a lot on a shared CI machine.
PROPERTY = settings(deadline=None)

walls = st.integers(min_value=0, max_value=MAX_WALL_MS)
counters = st.integers(min_value=0, max_value=MAX_COUNTER)
timestamps = st.builds(HLCTimestamp, walls, counters)
# Near-collisions matter most for the clock rules, so also draw from a tiny range.
small_timestamps = st.builds(
    HLCTimestamp, st.integers(1_000, 1_005), st.sampled_from([0, 1, 2, MAX_COUNTER])
)


def fake_clock(readings: list[int]) -> Callable[[], int]:
    """A wall clock returning ``readings`` in turn, then repeating the last one."""
    it: Iterator[int] = iter(readings)
    last = [readings[0] if readings else 0]

    def now() -> int:
        last[0] = next(it, last[0])
        return last[0]

    return now


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    """Milliseconds since the epoch, computed independently of the module under test."""
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()) * 1000


# --------------------------------------------------------------------- text format


def test_known_values() -> None:
    assert str(HLCTimestamp(0, 0)) == "1970-01-01T00:00:00.000Z/0000"
    ts = HLCTimestamp.parse("2026-11-30T23:10:04.120Z/0003")
    assert ts == HLCTimestamp(ms(2026, 11, 30, 23, 10, 4) + 120, 3)
    assert ts.format() == "2026-11-30T23:10:04.120Z/0003"
    assert str(HLCTimestamp(MAX_WALL_MS, MAX_COUNTER)) == "9999-12-31T23:59:59.999Z/9999"
    assert parse_timestamp("2024-02-29T00:00:00.001Z/9999") == HLCTimestamp(
        ms(2024, 2, 29) + 1, 9999
    )


@PROPERTY
@given(timestamps)
def test_format_parse_round_trip(ts: HLCTimestamp) -> None:
    text = ts.format()
    assert len(text) == 29
    assert HLCTimestamp.parse(text) == ts
    assert HLCTimestamp.parse(text).format() == text


@PROPERTY
@given(timestamps, timestamps)
def test_text_order_is_timestamp_order(a: HLCTimestamp, b: HLCTimestamp) -> None:
    assert (str(a) < str(b)) == (a < b) == ((a.wall_ms, a.counter) < (b.wall_ms, b.counter))
    assert (str(a) == str(b)) == (a == b)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2026-11-30T23:10:04.120Z",  # no counter
        "2026-11-30T23:10:04.120Z/",  # empty counter
        "2026-11-30T23:10:04.120Z/003",  # counter too short
        "2026-11-30T23:10:04.120Z/10000",  # counter past 9999
        "2026-11-30T23:10:04.120Z/-001",
        "2026-11-30T23:10:04.12Z/0003",  # 2-digit millis
        "2026-11-30T23:10:04.1200Z/0003",
        "2026-11-30T23:10:04Z/0003",  # no millis
        "2026-11-30 23:10:04.120Z/0003",  # space instead of T
        "2026-11-30t23:10:04.120z/0003",  # lowercase
        "2026-11-30T23:10:04.120+00:00/0003",  # offset instead of Z
        "2026-11-30T23:10:04.120/0003",  # no zone
        "26-11-30T23:10:04.120Z/0003",
        "2026-11-30T23:10:04.120Z/0003\n",  # trailing newline
        " 2026-11-30T23:10:04.120Z/0003",
        "2026-11-30T23:10:04.120Z/0003/0001",
        "２０２６-11-30T23:10:04.120Z/0003",  # full-width digits  # noqa: RUF001
        "2026-11-30T23:10:04.120Z/٠٠٠٣",  # Arabic-Indic digits
        "2026-02-30T00:00:00.000Z/0000",  # no 30 February
        "2025-02-29T00:00:00.000Z/0000",  # not a leap year
        "2026-13-01T00:00:00.000Z/0000",
        "2026-00-10T00:00:00.000Z/0000",
        "2026-11-31T00:00:00.000Z/0000",
        "2026-11-30T24:00:00.000Z/0000",
        "2026-11-30T23:60:00.000Z/0000",
        "2016-12-31T23:59:60.000Z/0000",  # leap seconds are not representable
        "0000-01-01T00:00:00.000Z/0000",
        "1969-12-31T23:59:59.999Z/0000",  # before the epoch
    ],
)
def test_malformed_rejected(text: str) -> None:
    with pytest.raises(InvalidTimestamp):
        HLCTimestamp.parse(text)


@pytest.mark.parametrize("value", [None, 1234, 12.5, b"2026-11-30T23:10:04.120Z/0003"])
def test_non_string_rejected(value: object) -> None:
    with pytest.raises(InvalidTimestamp, match="must be a string"):
        HLCTimestamp.parse(value)  # type: ignore[arg-type]


def test_messages_say_what_is_wrong() -> None:
    with pytest.raises(InvalidTimestamp, match="missing the '/NNNN' logical counter"):
        HLCTimestamp.parse("2026-11-30T23:10:04.120Z")
    with pytest.raises(InvalidTimestamp, match="counter must be exactly 4 digits"):
        HLCTimestamp.parse("2026-11-30T23:10:04.120Z/10000")
    with pytest.raises(InvalidTimestamp, match="wall time must be UTC to the millisecond"):
        HLCTimestamp.parse("2026-11-30T23:10:04Z/0003")
    with pytest.raises(InvalidTimestamp, match="not a real UTC date"):
        HLCTimestamp.parse("2026-02-30T00:00:00.000Z/0000")
    with pytest.raises(InvalidTimestamp, match="before 1970"):
        HLCTimestamp.parse("1969-12-31T23:59:59.999Z/0000")
    # Long junk is not echoed back whole.
    with pytest.raises(InvalidTimestamp) as info:
        HLCTimestamp.parse("x" * 10_000)
    assert len(str(info.value)) < 200


def test_invalid_timestamp_is_value_error() -> None:
    assert issubclass(InvalidTimestamp, ValueError)
    assert issubclass(TimestampTooFarAhead, ValueError)


@pytest.mark.parametrize(
    ("wall", "counter"),
    [(-1, 0), (MAX_WALL_MS + 1, 0), (0, -1), (0, MAX_COUNTER + 1), (True, 0), (0, 1.0)],
)
def test_constructor_range_checked(wall: int, counter: int) -> None:
    with pytest.raises(InvalidTimestamp):
        HLCTimestamp(wall, counter)


# --------------------------------------------------------------------- tick


@PROPERTY
@given(st.lists(st.integers(min_value=-10, max_value=5_000), min_size=1, max_size=60))
def test_tick_strictly_monotonic_whatever_the_wall_clock(readings: list[int]) -> None:
    clock = HybridLogicalClock(fake_clock(readings))
    previous: HLCTimestamp | None = None
    for reading in readings:
        ts = clock.tick()
        assert ts.wall_ms >= reading  # never behind physical time
        if previous is not None:
            assert ts > previous
            assert str(ts) > str(previous)
        previous = ts
    assert clock.last == previous


def test_tick_counter_rules() -> None:
    clock = HybridLogicalClock(fake_clock([1000, 1000, 1000, 2000, 1500, 1500, 2001]))
    got = [clock.tick() for _ in range(7)]
    assert got == [
        HLCTimestamp(1000, 0),
        HLCTimestamp(1000, 1),  # wall stood still: bump
        HLCTimestamp(1000, 2),
        HLCTimestamp(2000, 0),  # wall advanced: reset
        HLCTimestamp(2000, 1),  # wall went backwards: keep logical wall, bump
        HLCTimestamp(2000, 2),
        HLCTimestamp(2001, 0),
    ]


def test_tick_counter_overflow_carries_into_wall() -> None:
    clock = HybridLogicalClock(lambda: 1000, last=HLCTimestamp(1000, MAX_COUNTER - 1))
    assert clock.tick() == HLCTimestamp(1000, MAX_COUNTER)
    assert clock.tick() == HLCTimestamp(1001, 0)
    assert clock.tick() == HLCTimestamp(1001, 1)


def test_default_clock_is_close_to_real_time() -> None:
    before = int(datetime.now(UTC).timestamp() * 1000)
    ts = HybridLogicalClock().tick()
    after = int(datetime.now(UTC).timestamp() * 1000)
    assert before - 5 <= ts.wall_ms <= after + 5


def test_tick_thread_safe() -> None:
    clock = HybridLogicalClock(lambda: 1000)
    results: list[list[HLCTimestamp]] = [[] for _ in range(4)]

    def work(out: list[HLCTimestamp]) -> None:
        for _ in range(2_000):
            out.append(clock.tick())

    threads = [threading.Thread(target=work, args=(out,)) for out in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [ts for out in results for ts in out]
    assert len(set(everything)) == 8_000
    for out in results:
        assert out == sorted(out)


# --------------------------------------------------------------------- observe


@PROPERTY
@given(
    st.lists(st.integers(0, 3_000), min_size=0, max_size=5),
    small_timestamps | timestamps.filter(lambda t: t.wall_ms < MAX_WALL_MS),
    st.integers(0, 3_000),
)
def test_observe_exceeds_local_and_remote(
    local_readings: list[int], remote: HLCTimestamp, now: int
) -> None:
    readings = [*local_readings, now]
    clock = HybridLogicalClock(fake_clock(readings))
    local = None
    for _ in local_readings:
        local = clock.tick()
    got = clock.observe(remote)
    assert got > remote
    if local is not None:
        assert got > local
    assert got.wall_ms >= now
    assert clock.tick() > got


@pytest.mark.parametrize(
    ("local", "remote", "now", "expected"),
    [
        ((1000, 5), (2000, 3), 1500, (2000, 4)),  # remote ahead
        ((2000, 5), (1000, 3), 1500, (2000, 6)),  # local ahead
        ((1000, 5), (1000, 7), 900, (1000, 8)),  # same wall: max counter + 1
        ((1000, 9), (1000, 7), 900, (1000, 10)),
        ((1000, 5), (1200, 7), 3000, (3000, 0)),  # physical clock ahead: reset
        ((1000, 5), (1000, MAX_COUNTER), 1000, (1001, 0)),  # overflow carries
    ],
)
def test_observe_rules(
    local: tuple[int, int], remote: tuple[int, int], now: int, expected: tuple[int, int]
) -> None:
    clock = HybridLogicalClock(lambda: now, last=HLCTimestamp(*local))
    assert clock.observe(HLCTimestamp(*remote)) == HLCTimestamp(*expected)


def test_observe_first_event_and_text() -> None:
    clock = HybridLogicalClock(lambda: 500)
    assert clock.observe("1970-01-01T00:00:01.000Z/0004") == HLCTimestamp(1000, 5)
    clock = HybridLogicalClock(lambda: 5000)
    assert clock.observe(HLCTimestamp(1000, 4)) == HLCTimestamp(5000, 0)
    with pytest.raises(InvalidTimestamp):
        clock.observe("yesterday")


# --------------------------------------------------------------------- skew


def test_skew_check() -> None:
    now = 1_000_000_000
    assert DEFAULT_MAX_SKEW_MS == 300_000
    at_limit = HLCTimestamp(now + DEFAULT_MAX_SKEW_MS, MAX_COUNTER)
    assert check_not_ahead(at_limit, now) == at_limit
    assert check_not_ahead(HLCTimestamp(0, 0), now) == HLCTimestamp(0, 0)  # the past is fine
    with pytest.raises(TimestampTooFarAhead, match="ahead of the server clock"):
        check_not_ahead(HLCTimestamp(now + DEFAULT_MAX_SKEW_MS + 1, 0), now)
    # The caller passes the configured limit.
    with pytest.raises(TimestampTooFarAhead):
        check_not_ahead(HLCTimestamp(now + 1_001, 0), now, max_skew_ms=1_000)
    assert check_not_ahead(HLCTimestamp(now + 1_000, 0), now, max_skew_ms=1_000)
    # Text is parsed (and must be valid).
    text = str(HLCTimestamp(now, 3))
    assert check_not_ahead(text, now) == HLCTimestamp(now, 3)
    with pytest.raises(InvalidTimestamp):
        check_not_ahead("soon", now)
