"""Scheduled dates and tolerance windows of routine service (pure: no I/O).

Design and the boundary rules are in docs/api/schedule.md. In short:

* the n-th scheduled date of a routine is ``baseline + n x period``, always computed from
  the baseline (never from the previous date or from when a service was done), with
  calendar months clamped to the end of the month: a 31 January baseline is due on
  28/29 February, 31 March, 30 April...; a 29 February baseline is due on 28 February in
  common years;
* the tolerance window spans the same tolerance either side of the scheduled date, in
  working days (the scheduled date itself not counted, whether or not it is a working day)
  or in clamped calendar months.
"""

from __future__ import annotations

import calendar as _calendar
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

from holidays import HolidayBase
from holidays.countries.australia import Australia

from src.app.buildings.models import AustralianState
from src.app.rules.frequency import Frequency

STATE_TIMEZONES: dict[AustralianState, str] = {
    AustralianState.NSW: "Australia/Sydney",
    AustralianState.VIC: "Australia/Melbourne",
    AustralianState.QLD: "Australia/Brisbane",
    AustralianState.SA: "Australia/Adelaide",
    AustralianState.WA: "Australia/Perth",
    AustralianState.TAS: "Australia/Hobart",
    AustralianState.ACT: "Australia/Canberra",
    AustralianState.NT: "Australia/Darwin",
}


@dataclass(frozen=True, slots=True)
class Tolerance:
    """Either side of the scheduled date: working days, or calendar months."""

    working_days: int = 0
    months: int = 0


# AS 1851-2012 Table 1.11(B) as quoted publicly. Weekly is not in that table: one working
# day either side is our assumption (documented in docs/api/schedule.md).
TOLERANCES: dict[Frequency, Tolerance] = {
    Frequency.weekly: Tolerance(working_days=1),
    Frequency.monthly: Tolerance(working_days=5),
    Frequency.three_monthly: Tolerance(working_days=10),
    Frequency.six_monthly: Tolerance(months=1),
    Frequency.yearly: Tolerance(months=2),
    Frequency.five_yearly: Tolerance(months=3),
    Frequency.ten_yearly: Tolerance(months=6),
    Frequency.twenty_five_yearly: Tolerance(months=6),
    Frequency.thirty_yearly: Tolerance(months=6),
}
# No window reaches further from its scheduled date than this (6 months, rounded up):
# lets a query bound a date range by an index condition.
MAX_TOLERANCE_DAYS = 190


def add_months(day: date, months: int) -> date:
    """``day`` moved by whole calendar months, clamped to the last day of the month."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    last = _calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def scheduled_date(baseline: date, frequency: Frequency, n: int) -> date:
    """The n-th scheduled date (n=0 is the baseline itself)."""
    if frequency.period_days:
        return baseline + timedelta(days=frequency.period_days * n)
    return add_months(baseline, frequency.period_months * n)


@lru_cache(maxsize=16)
def _public_holidays(state: AustralianState | None) -> HolidayBase | None:
    if state is None:
        return None
    # Expands to any year on look-up; cached so the expansion happens once per state.
    # (Imported at module level: the package's first import costs about a second.)
    return Australia(subdiv=state.value)  # type: ignore[no-untyped-call]


class WorkingDays:
    """Monday to Friday minus the public holidays of a state (none when unknown)."""

    def __init__(self, state: AustralianState | None) -> None:
        self.state = state
        self._holidays = _public_holidays(state)

    def is_working_day(self, day: date) -> bool:
        if day.weekday() >= 5:
            return False
        return self._holidays is None or day not in self._holidays

    def shift(self, day: date, count: int) -> date:
        """The |count|-th working day after (count > 0) or before (count < 0) ``day``."""
        step = timedelta(days=1 if count > 0 else -1)
        remaining = abs(count)
        while remaining:
            day += step
            if self.is_working_day(day):
                remaining -= 1
        return day


@dataclass(frozen=True, slots=True)
class Window:
    """The inclusive days a service satisfies a scheduled date in tolerance."""

    start: date
    scheduled: date
    end: date

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day <= self.end


def tolerance_window(scheduled: date, frequency: Frequency, working_days: WorkingDays) -> Window:
    return _window(scheduled, frequency, working_days.state)


@lru_cache(maxsize=200_000)
def _window(scheduled: date, frequency: Frequency, state: AustralianState | None) -> Window:
    # Cached: a building's assets mostly share scheduled dates, and holiday look-ups add up.
    tolerance = TOLERANCES[frequency]
    if tolerance.working_days:
        working_days = WorkingDays(state)
        return Window(
            working_days.shift(scheduled, -tolerance.working_days),
            scheduled,
            working_days.shift(scheduled, tolerance.working_days),
        )
    return Window(
        add_months(scheduled, -tolerance.months), scheduled, add_months(scheduled, tolerance.months)
    )
