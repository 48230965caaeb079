"""Routine service frequencies (AS 1851-2012 and AS/NZS 2293.2)."""

from __future__ import annotations

from enum import StrEnum


class Frequency(StrEnum):
    """Routine service intervals."""

    weekly = "weekly"
    monthly = "monthly"
    three_monthly = "3-monthly"
    six_monthly = "6-monthly"
    yearly = "yearly"
    five_yearly = "5-yearly"
    ten_yearly = "10-yearly"
    twenty_five_yearly = "25-yearly"
    thirty_yearly = "30-yearly"
