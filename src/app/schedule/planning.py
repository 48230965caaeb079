"""An asset's routine occurrences and which completed service satisfied each (pure: no I/O).

The rules, with examples, are in docs/api/schedule.md. A service (a completed session that
covered the asset) satisfies, for each routine it covers, at most one occurrence:

1. for a routine ranked strictly below a routine the service covers directly, the lower
   occurrence scheduled nearest to the higher occurrence whose window holds the service
   date ("the yearly includes that window's monthly");
2. otherwise the occurrence whose own window holds the service date;
3. otherwise, between two windows, the earlier occurrence if it is still open (done late,
   out of tolerance), else the next one (done early, out of tolerance).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum

from src.app.rules.frequency import Frequency
from src.app.schedule.calendar import (
    Window,
    WorkingDays,
    scheduled_date,
    tolerance_window,
)


class Outcome(StrEnum):
    """How a done occurrence relates to its scheduled date and window."""

    on_time = "on_time"  # on the scheduled date
    early = "early"  # before the scheduled date, in the window
    late = "late"  # after the scheduled date, in the window (in tolerance)
    out_of_tolerance = "out_of_tolerance"  # outside the window


class OccurrenceStatus(StrEnum):
    """An occurrence's state on a given day."""

    due = "due"  # open; the scheduled date is today or later
    overdue = "overdue"  # open; past the scheduled date, still in tolerance
    missed = "missed"  # open; the window has ended (out of tolerance)
    done = "done"


@dataclass(frozen=True, slots=True)
class Routine:
    """One routine of an asset: a rule of the catalogue and its resolved baseline."""

    rule_code: str
    frequency: Frequency
    baseline: date | None


@dataclass(frozen=True, slots=True)
class Service:
    """A completed session that covered the asset, on the day it was done.

    ``rule_code`` is the routine the session declared for this asset; ``None`` means the
    session declared none and covers every routine up to its ``frequency``.
    """

    done_on: date
    session_id: uuid.UUID
    frequency: Frequency
    rule_code: str | None = None

    def covers_directly(self, routine: Routine) -> bool:
        if self.rule_code is None:
            return routine.frequency.rank <= self.frequency.rank
        return routine.rule_code == self.rule_code or routine.frequency.rank < self.frequency.rank


@dataclass(frozen=True, slots=True)
class Occurrence:
    """The n-th occurrence of a routine and, once done, by which session and how."""

    seq: int
    window: Window
    done_on: date | None = None
    session_id: uuid.UUID | None = None
    outcome: Outcome | None = None

    @property
    def due_on(self) -> date:
        return self.window.scheduled

    def status(self, today: date) -> OccurrenceStatus:
        return occurrence_status(self.due_on, self.window.end, self.done_on, today)


def occurrence_status(
    due_on: date, window_end: date, done_on: date | None, today: date
) -> OccurrenceStatus:
    if done_on is not None:
        return OccurrenceStatus.done
    if today <= due_on:
        return OccurrenceStatus.due
    if today <= window_end:
        return OccurrenceStatus.overdue
    return OccurrenceStatus.missed


def classify(done_on: date, window: Window) -> Outcome:
    if done_on not in window:
        return Outcome.out_of_tolerance
    if done_on == window.scheduled:
        return Outcome.on_time
    return Outcome.early if done_on < window.scheduled else Outcome.late


def occurrences(
    routine: Routine, baseline: date, working_days: WorkingDays, *, since: date, until: date
) -> list[Occurrence]:
    """Occurrences n >= 1 whose window ends on or after ``since`` and that are scheduled
    on or before ``until``."""
    frequency = routine.frequency
    period_months = frequency.period_months or 0
    # Jump close to ``since`` instead of walking from a decades-old baseline; two periods
    # of slack cover the widest window.
    if period_months:
        months_before = (since.year - baseline.year) * 12 + since.month - baseline.month
        n = max(1, months_before // period_months - 2)
    else:
        n = max(1, (since - baseline).days // frequency.period_days - 2)
    found: list[Occurrence] = []
    while True:
        due = scheduled_date(baseline, frequency, n)
        if due > until:
            return found
        window = tolerance_window(due, frequency, working_days)
        if window.end >= since:
            found.append(Occurrence(seq=n, window=window))
        n += 1


@dataclass
class AssetPlan:
    """Per routine code: the resolved baseline and its occurrences."""

    baselines: dict[str, date | None] = field(default_factory=dict)
    occurrences: dict[str, list[Occurrence]] = field(default_factory=dict)


def resolve_baseline(routine: Routine, services: Sequence[Service]) -> date | None:
    """The routine's baseline, or the first service covering it when none was set."""
    if routine.baseline is not None:
        return routine.baseline
    for service in sorted(services, key=lambda s: s.done_on):
        if service.covers_directly(routine):
            return service.done_on
    return None


def plan_asset(
    routines: Iterable[Routine],
    services: Iterable[Service],
    working_days: WorkingDays,
    *,
    since: date,
    until: date,
) -> AssetPlan:
    """Every occurrence of the asset's routines between ``since`` and ``until``, with the
    services assigned to them in date order (earliest service first)."""
    routines = list(routines)
    ordered = sorted(services, key=lambda s: (s.done_on, -s.frequency.rank, str(s.session_id)))
    plan = AssetPlan()
    for routine in routines:
        baseline = resolve_baseline(routine, ordered)
        plan.baselines[routine.rule_code] = baseline
        plan.occurrences[routine.rule_code] = (
            []
            if baseline is None
            else occurrences(routine, baseline, working_days, since=since, until=until)
        )
    for service in ordered:
        _assign(plan, routines, service)
    return plan


def _assign(plan: AssetPlan, routines: list[Routine], service: Service) -> None:
    direct = [r for r in routines if service.covers_directly(r)]
    for routine in direct:
        if plan.baselines[routine.rule_code] == service.done_on and routine.baseline is None:
            continue  # this service is the routine's initial activity, not an occurrence
        found = plan.occurrences[routine.rule_code]
        index, window = _through_higher(plan, direct, routine, service.done_on)
        if index is None:
            index = _by_window(found, service.done_on)
            window = found[index].window if index is not None else None
        if index is None or window is None or found[index].done_on is not None:
            continue
        found[index] = replace(
            found[index],
            done_on=service.done_on,
            session_id=service.session_id,
            outcome=classify(service.done_on, window),
        )


def _through_higher(
    plan: AssetPlan, direct: list[Routine], routine: Routine, day: date
) -> tuple[int | None, Window | None]:
    """The lower occurrence a higher covered routine's window satisfies, and that window."""
    lower = plan.occurrences[routine.rule_code]
    if not lower:
        return None, None
    for higher in sorted(direct, key=lambda r: -r.frequency.rank):
        if higher.frequency.rank <= routine.frequency.rank:
            break
        for occurrence in plan.occurrences[higher.rule_code]:
            if day in occurrence.window:
                scheduled = occurrence.due_on
                nearest = min(
                    range(len(lower)),
                    key=lambda i: (abs((lower[i].due_on - scheduled).days), lower[i].due_on),
                )
                if lower[nearest].done_on is None:
                    return nearest, occurrence.window
    return None, None


def _by_window(found: list[Occurrence], day: date) -> int | None:
    for index, occurrence in enumerate(found):
        if day in occurrence.window:
            return index if occurrence.done_on is None else None
    # Between windows: the earlier one if still open (late), else the next (early).
    before = [i for i, o in enumerate(found) if o.window.end < day]
    after = [i for i, o in enumerate(found) if o.window.start > day]
    if before and found[before[-1]].done_on is None:
        return before[-1]
    if after and found[after[0]].done_on is None and before:
        return after[0]
    return None
