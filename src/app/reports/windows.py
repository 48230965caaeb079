"""Tolerance windows of routine services (AS 1851-2012 Table 1.11(B), as quoted publicly).

A stand-in, used by the report's data gathering until the schedule domain (which also
knows each state's public holidays) provides the occurrences: here working days are
Monday to Friday. Pure.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta

from src.app.rules.frequency import Frequency

# (working days, calendar months) either side of the due date; one of the two is 0.
TOLERANCE: dict[Frequency, tuple[int, int]] = {
    Frequency.weekly: (1, 0),
    Frequency.monthly: (5, 0),
    Frequency.three_monthly: (10, 0),
    Frequency.six_monthly: (0, 1),
    Frequency.yearly: (0, 2),
    Frequency.five_yearly: (0, 3),
    Frequency.ten_yearly: (0, 6),
    Frequency.twenty_five_yearly: (0, 6),
    Frequency.thirty_yearly: (0, 6),
}


def add_months(day: date, months: int) -> date:
    """Same day of the month ``months`` later (or earlier); clamped to the month's end."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def add_working_days(day: date, count: int) -> date:
    step = 1 if count >= 0 else -1
    remaining = abs(count)
    while remaining:
        day += timedelta(days=step)
        if day.weekday() < 5:
            remaining -= 1
    return day


def tolerance_window(due_on: date, frequency: Frequency) -> tuple[date, date]:
    """First and last day on which the routine due on ``due_on`` counts as done in time."""
    working_days, months = TOLERANCE[frequency]
    if months:
        return add_months(due_on, -months), add_months(due_on, months)
    return add_working_days(due_on, -working_days), add_working_days(due_on, working_days)
