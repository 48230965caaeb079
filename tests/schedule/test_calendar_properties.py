"""Property tests of the pure schedule logic: scheduled dates, tolerance windows, and which
service satisfies which occurrence (no database)."""

from __future__ import annotations

import calendar
import uuid
from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from src.app.buildings.models import AustralianState
from src.app.rules.frequency import Frequency
from src.app.schedule.calendar import (
    TOLERANCES,
    WorkingDays,
    add_months,
    scheduled_date,
    tolerance_window,
)
from src.app.schedule.planning import (
    OccurrenceStatus,
    Outcome,
    Routine,
    Service,
    classify,
    plan_asset,
)

STATES = st.sampled_from([None, *AustralianState])
FREQUENCIES = st.sampled_from(list(Frequency))
DAYS = st.dates(min_value=date(2000, 1, 1), max_value=date(2060, 12, 31))  # 30-yearly x 200 fits
RECENT = st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31))
WORKING_DAY_FREQUENCIES = [f for f, t in TOLERANCES.items() if t.working_days]
MONTH_FREQUENCIES = [f for f, t in TOLERANCES.items() if t.months]


def _working_days_between(working: WorkingDays, start: date, end: date) -> int:
    """Working days in (start, end], or in [end, start) counted negatively."""
    if end >= start:
        days = [start + timedelta(days=i + 1) for i in range((end - start).days)]
        return sum(working.is_working_day(d) for d in days)
    days = [end + timedelta(days=i) for i in range((start - end).days)]
    return -sum(working.is_working_day(d) for d in days)


def test_the_tolerance_table_is_the_standards() -> None:
    expected = {
        Frequency.monthly: (5, 0),
        Frequency.three_monthly: (10, 0),
        Frequency.six_monthly: (0, 1),
        Frequency.yearly: (0, 2),
        Frequency.five_yearly: (0, 3),
        Frequency.ten_yearly: (0, 6),
        Frequency.twenty_five_yearly: (0, 6),
        Frequency.thirty_yearly: (0, 6),
    }
    for frequency, (working_days, months) in expected.items():
        assert TOLERANCES[frequency].working_days == working_days
        assert TOLERANCES[frequency].months == months


@given(baseline=DAYS, frequency=FREQUENCIES, n=st.integers(0, 200))
def test_scheduled_dates_are_baseline_plus_n_periods_clamped(
    baseline: date, frequency: Frequency, n: int
) -> None:
    due = scheduled_date(baseline, frequency, n)
    if frequency.period_days:
        assert due == baseline + timedelta(days=7 * n)
        return
    months = frequency.period_months * n
    assert (due.year * 12 + due.month) - (baseline.year * 12 + baseline.month) == months
    last = calendar.monthrange(due.year, due.month)[1]
    assert due.day == min(baseline.day, last)


@settings(max_examples=60, deadline=None)
@given(
    baseline=RECENT,
    frequency=st.sampled_from([f for f in Frequency if f.period_months <= 12]),
    state=STATES,
    service_days=st.lists(st.integers(0, 900), max_size=12),
)
def test_due_dates_never_drift_whatever_the_service_dates(
    baseline: date, frequency: Frequency, state: AustralianState | None, service_days: list[int]
) -> None:
    working = WorkingDays(state)
    routine = Routine("R", frequency, baseline)
    services = [
        Service(baseline + timedelta(days=d), uuid.uuid4(), frequency, "R") for d in service_days
    ]
    window = {"since": baseline, "until": baseline + timedelta(days=1000)}
    alone = plan_asset([routine], [], working, **window).occurrences["R"]
    served = plan_asset([routine], services, working, **window).occurrences["R"]
    assert [o.due_on for o in served] == [o.due_on for o in alone]
    assert [o.due_on for o in served] == [
        scheduled_date(baseline, frequency, o.seq) for o in served
    ]
    # Each service satisfies at most one occurrence, and only services given are used.
    used = [o.session_id for o in served if o.session_id is not None]
    assert len(used) == len(set(used))
    assert set(used) <= {s.session_id for s in services}


@settings(max_examples=200, deadline=None)
@given(day=DAYS, frequency=st.sampled_from(WORKING_DAY_FREQUENCIES), state=STATES)
def test_working_day_windows_count_working_days_either_side(
    day: date, frequency: Frequency, state: AustralianState | None
) -> None:
    working = WorkingDays(state)
    window = tolerance_window(day, frequency, working)
    expected = TOLERANCES[frequency].working_days
    assert working.is_working_day(window.start) and working.is_working_day(window.end)
    assert _working_days_between(working, day, window.end) == expected
    assert _working_days_between(working, day, window.start) == -expected


@given(day=DAYS, frequency=st.sampled_from(MONTH_FREQUENCIES), state=STATES)
def test_month_windows_are_calendar_months_either_side(
    day: date, frequency: Frequency, state: AustralianState | None
) -> None:
    window = tolerance_window(day, frequency, WorkingDays(state))
    months = TOLERANCES[frequency].months
    assert window.start == add_months(day, -months)
    assert window.end == add_months(day, months)
    assert window.start < day < window.end


def test_working_day_windows_skip_the_states_public_holidays() -> None:
    # Christmas in NSW: 25 Dec (Fri), 28 Dec (Boxing Day observed), 1 Jan are holidays.
    nsw = WorkingDays(AustralianState.NSW)
    window = tolerance_window(date(2026, 12, 24), Frequency.monthly, nsw)
    assert window.end == date(2027, 1, 5)
    assert window.start == date(2026, 12, 17)
    # Melbourne Cup day (first Tuesday of November) is a holiday in Victoria only.
    monday = date(2026, 11, 2)
    assert tolerance_window(monday, Frequency.monthly, WorkingDays(AustralianState.VIC)).end == (
        date(2026, 11, 10)
    )
    assert tolerance_window(monday, Frequency.monthly, nsw).end == date(2026, 11, 9)
    # No state: weekends only.
    assert tolerance_window(date(2026, 12, 24), Frequency.monthly, WorkingDays(None)).end == (
        date(2026, 12, 31)
    )
    # A scheduled date on a Saturday: five working days either side of it.
    saturday = tolerance_window(date(2026, 3, 7), Frequency.monthly, nsw)
    assert (saturday.start, saturday.end) == (date(2026, 3, 2), date(2026, 3, 13))


@settings(max_examples=80, deadline=None)
@given(
    baseline=RECENT,
    state=STATES,
    k=st.integers(1, 3),
    offset=st.integers(-70, 70),
)
def test_a_yearly_service_in_its_window_satisfies_that_windows_lower_routines(
    baseline: date, state: AustralianState | None, k: int, offset: int
) -> None:
    working = WorkingDays(state)
    lower = [Frequency.monthly, Frequency.three_monthly, Frequency.six_monthly]
    routines = [Routine(f.value, f, baseline) for f in (*lower, Frequency.yearly)]
    yearly_due = scheduled_date(baseline, Frequency.yearly, k)
    window = tolerance_window(yearly_due, Frequency.yearly, working)
    done_on = min(max(yearly_due + timedelta(days=offset), window.start), window.end)
    session = uuid.uuid4()
    plan = plan_asset(
        routines,
        [Service(done_on, session, Frequency.yearly, Frequency.yearly.value)],
        working,
        since=baseline,
        until=baseline + timedelta(days=366 * 4),
    )
    for routine in routines:
        matched = [o for o in plan.occurrences[routine.rule_code] if o.due_on == yearly_due]
        assert len(matched) == 1, routine
        assert matched[0].session_id == session
        assert matched[0].done_on == done_on
        assert matched[0].outcome == classify(done_on, window)
        assert matched[0].outcome is not Outcome.out_of_tolerance


def _single(frequency: Frequency, baseline: date, done_on: date) -> tuple[Outcome | None, int]:
    routine = Routine("R", frequency, baseline)
    session = uuid.uuid4()
    plan = plan_asset(
        [routine],
        [Service(done_on, session, frequency, "R")],
        WorkingDays(AustralianState.NSW),
        since=baseline,
        until=baseline + timedelta(days=800),
    )
    done = [o for o in plan.occurrences["R"] if o.session_id == session]
    return (done[0].outcome, done[0].seq) if done else (None, 0)


def test_window_boundaries_behave_as_documented() -> None:
    baseline = date(2026, 3, 31)
    due = scheduled_date(baseline, Frequency.six_monthly, 1)
    assert due == date(2026, 9, 30)
    window = tolerance_window(due, Frequency.six_monthly, WorkingDays(AustralianState.NSW))
    assert (window.start, window.end) == (date(2026, 8, 30), date(2026, 10, 30))
    assert _single(Frequency.six_monthly, baseline, window.start) == (Outcome.early, 1)
    assert _single(Frequency.six_monthly, baseline, due) == (Outcome.on_time, 1)
    assert _single(Frequency.six_monthly, baseline, window.end) == (Outcome.late, 1)
    # The day after the window: still that occurrence (it was open), out of tolerance.
    after = window.end + timedelta(days=1)
    assert _single(Frequency.six_monthly, baseline, after) == (Outcome.out_of_tolerance, 1)
    # Before the first window of all: nothing to satisfy.
    assert _single(Frequency.six_monthly, baseline, window.start - timedelta(days=1)) == (None, 0)


def test_end_of_month_and_leap_days() -> None:
    # Monthly from 31 January: clamped each month, never drifting to the 28th.
    january = date(2024, 1, 31)
    monthly = [scheduled_date(january, Frequency.monthly, n) for n in range(1, 5)]
    assert monthly == [date(2024, 2, 29), date(2024, 3, 31), date(2024, 4, 30), date(2024, 5, 31)]
    # 6-monthly from 31 August: 28/29 February, then 31 August again.
    august = date(2023, 8, 31)
    six = [scheduled_date(august, Frequency.six_monthly, n) for n in range(1, 5)]
    assert six == [date(2024, 2, 29), date(2024, 8, 31), date(2025, 2, 28), date(2025, 8, 31)]
    # A leap-day baseline: 28 February in common years, 29 February in leap years.
    leap = date(2024, 2, 29)
    yearly = [scheduled_date(leap, Frequency.yearly, n) for n in range(1, 5)]
    assert yearly == [date(2025, 2, 28), date(2026, 2, 28), date(2027, 2, 28), date(2028, 2, 29)]
    # A one-month window around 31 March reaches 29 February and 30 April.
    window = tolerance_window(date(2024, 3, 31), Frequency.six_monthly, WorkingDays(None))
    assert (window.start, window.end) == (date(2024, 2, 29), date(2024, 4, 30))
    # A service on the leap day itself, the scheduled date of a monthly routine.
    assert _single(Frequency.monthly, january, date(2024, 2, 29)) == (Outcome.on_time, 1)


@given(
    due=RECENT,
    end_offset=st.integers(0, 200),
    done_offset=st.one_of(st.none(), st.integers(-200, 400)),
    today_offset=st.integers(-400, 400),
)
def test_status_of_an_occurrence_on_a_day(
    due: date, end_offset: int, done_offset: int | None, today_offset: int
) -> None:
    from src.app.schedule.planning import occurrence_status

    end = due + timedelta(days=end_offset)
    done = None if done_offset is None else due + timedelta(days=done_offset)
    today = due + timedelta(days=today_offset)
    status = occurrence_status(due, end, done, today)
    if done is not None:
        assert status is OccurrenceStatus.done
    elif today <= due:
        assert status is OccurrenceStatus.due
    elif today <= end:
        assert status is OccurrenceStatus.overdue
    else:
        assert status is OccurrenceStatus.missed
