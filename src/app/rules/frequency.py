"""Routine service frequencies (AS 1851-2012 and AS/NZS 2293.2).

Each frequency knows its period (calendar months, or days for weekly) and its rank: a
routine of a higher rank covers the lower-ranked routines due in the same window (the
yearly service includes that window's 6-monthly, 3-monthly and monthly activities).
"""

from __future__ import annotations

from enum import StrEnum


class Frequency(StrEnum):
    """Routine service intervals, declared from the most to the least frequent."""

    weekly = "weekly"
    monthly = "monthly"
    three_monthly = "3-monthly"
    six_monthly = "6-monthly"
    yearly = "yearly"
    five_yearly = "5-yearly"
    ten_yearly = "10-yearly"
    twenty_five_yearly = "25-yearly"
    thirty_yearly = "30-yearly"

    @property
    def period_months(self) -> int:
        """Calendar months between two occurrences (0 for weekly, which counts days)."""
        return _PERIOD_MONTHS[self]

    @property
    def period_days(self) -> int:
        """Days between two occurrences for day-based frequencies (weekly), else 0."""
        return 7 if self is Frequency.weekly else 0

    @property
    def rank(self) -> int:
        """Higher ranks are less frequent and more thorough routines."""
        return _RANK[self]

    def covers(self, other: Frequency) -> bool:
        """Whether doing this routine also satisfies ``other`` in the same window."""
        return self.rank >= other.rank


_PERIOD_MONTHS: dict[Frequency, int] = {
    Frequency.weekly: 0,
    Frequency.monthly: 1,
    Frequency.three_monthly: 3,
    Frequency.six_monthly: 6,
    Frequency.yearly: 12,
    Frequency.five_yearly: 60,
    Frequency.ten_yearly: 120,
    Frequency.twenty_five_yearly: 300,
    Frequency.thirty_yearly: 360,
}
_RANK: dict[Frequency, int] = {frequency: rank for rank, frequency in enumerate(Frequency)}
