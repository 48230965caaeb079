"""Keeping the materialised schedule in step with assets, baselines and completed sessions.

``refresh_assets`` recomputes the routines and occurrences of some assets from what the
database says (the rule catalogue, baselines, completed sessions) with the pure planner,
then writes only the differences. It runs inside the caller's transaction: from the hooks
(asset saved, building state changed, session completed), from the admin baseline routes,
and from ``firemode schedule sweep``.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.buildings.models import Asset, AustralianState, Building
from src.app.core.clock import utc_now
from src.app.core.settings import Settings
from src.app.rules.frequency import Frequency
from src.app.rules.service import applicable_rules
from src.app.schedule import events
from src.app.schedule.calendar import STATE_TIMEZONES, WorkingDays
from src.app.schedule.models import (
    AssetBaseline,
    ScheduleOccurrence,
    ScheduleRoutine,
    SessionRoutine,
)
from src.app.schedule.planning import Occurrence, Outcome, Routine, Service, plan_asset
from src.app.sessions.models import SessionStatus, TestSession

_O = ScheduleOccurrence


class BaselineSource:
    routine = "routine"
    asset = "asset"
    installed_on = "installed_on"
    first_service = "first_service"


@dataclass(frozen=True, slots=True)
class Horizon:
    """Which occurrences are materialised: windows ending on or after ``since``, scheduled
    on or before ``until``; ``today`` decides what is already out of tolerance."""

    today: date
    since: date
    until: date

    @classmethod
    def of(cls, settings: Settings, today: date | None = None) -> Horizon:
        today = today or local_today(settings)
        return cls(
            today,
            today - timedelta(days=settings.schedule_lookback_days),
            today + timedelta(days=settings.schedule_horizon_days),
        )


def local_today(settings: Settings) -> date:
    """Today in the schedule's time zone (what due / overdue are measured against)."""
    return utc_now().astimezone(ZoneInfo(settings.schedule_timezone)).date()


def done_day(completed_at: datetime, state: str | None, settings: Settings) -> date:
    """The day a session was done, in its building's time zone."""
    zone = STATE_TIMEZONES[AustralianState(state)] if state else settings.schedule_timezone
    return completed_at.astimezone(ZoneInfo(zone)).date()


@dataclass
class _AssetFacts:
    asset: Any  # a row: id, building_id, asset_type, installed_on, attributes
    state: str | None
    rules: dict[str, Frequency]  # code -> frequency, the rules applying to it
    routines: dict[str, Any]  # code -> ScheduleRoutine
    baseline: date | None  # the asset-level baseline an admin set


async def _rules_by_type(
    db: AsyncSession, organisation_id: uuid.UUID, assets: Sequence[Any]
) -> dict[uuid.UUID, dict[str, Frequency]]:
    found = await applicable_rules(
        db, organisation_id=organisation_id, asset_types={a.asset_type for a in assets}
    )
    per_asset: dict[uuid.UUID, dict[str, Frequency]] = {}
    for asset in assets:
        variant = (asset.attributes or {}).get("variant")
        per_asset[asset.id] = {
            a.rule.code: Frequency(a.rule.frequency)
            for a in found
            if a.rule.asset_type == asset.asset_type
            and (not a.version.variants or variant is None or variant in a.version.variants)
        }
    return per_asset


async def _services(
    db: AsyncSession,
    organisation_id: uuid.UUID,
    facts: dict[uuid.UUID, _AssetFacts],
    settings: Settings,
) -> dict[uuid.UUID, list[Service]]:
    """The completed sessions that covered each asset, as planner services."""
    asset_ids = list(facts)
    building_ids = {f.asset.building_id for f in facts.values()}
    services: dict[uuid.UUID, list[Service]] = defaultdict(list)
    declared = (
        await db.execute(
            select(
                SessionRoutine.asset_id,
                SessionRoutine.rule_code,
                TestSession.id,
                _completed_at_column(),
                TestSession.building_id,
            )
            .join(TestSession, TestSession.id == SessionRoutine.session_id)
            .where(
                SessionRoutine.organisation_id == organisation_id,
                SessionRoutine.asset_id.in_(asset_ids),
                TestSession.status == SessionStatus.completed.value,
            )
        )
    ).all()
    states = {f.asset.building_id: f.state for f in facts.values()}
    for asset_id, code, session_id, completed_at, building_id in declared:
        frequency = facts[asset_id].rules.get(code)
        if frequency is None:
            continue  # a rule that no longer applies to the asset
        day = done_day(completed_at, states.get(building_id), settings)
        services[asset_id].append(Service(day, session_id, frequency, code))
    # Sessions that declared no routines cover every asset of their building up to their
    # frequency.
    undeclared = (
        await db.execute(
            select(
                TestSession.id,
                TestSession.building_id,
                TestSession.frequency,
                _completed_at_column(),
            ).where(
                TestSession.organisation_id == organisation_id,
                TestSession.building_id.in_(building_ids),
                TestSession.status == SessionStatus.completed.value,
                TestSession.frequency.is_not(None),
                ~select(SessionRoutine.session_id)
                .where(SessionRoutine.session_id == TestSession.id)
                .exists(),
            )
        )
    ).all()
    for session_id, building_id, frequency, completed_at in undeclared:
        day = done_day(completed_at, states.get(building_id), settings)
        for fact in facts.values():
            if fact.asset.building_id == building_id:
                services[fact.asset.id].append(Service(day, session_id, Frequency(frequency)))
    return services


def _completed_at_column() -> Any:
    # Sessions completed before completed_at existed: locked since, so their last update.
    return func.coalesce(TestSession.completed_at, TestSession.updated_at)


async def refresh_assets(
    db: AsyncSession,
    *,
    organisation_id: uuid.UUID,
    settings: Settings,
    asset_ids: Iterable[uuid.UUID] | None = None,
    building_id: uuid.UUID | None = None,
    horizon: Horizon | None = None,
) -> None:
    """Recompute the routines and occurrences of the given assets (or of a building's)."""
    horizon = horizon or Horizon.of(settings)
    statement = (
        select(
            Asset.id,
            Asset.building_id,
            Asset.asset_type,
            Asset.installed_on,
            Asset.attributes,
            Building.state,
        )
        .join(Building, Building.id == Asset.building_id)
        .where(Asset.organisation_id == organisation_id)
    )
    if asset_ids is not None:
        statement = statement.where(Asset.id.in_(list(asset_ids)))
    if building_id is not None:
        statement = statement.where(Asset.building_id == building_id)
    assets = (await db.execute(statement)).all()
    if not assets:
        return
    for start in range(0, len(assets), 500):
        await _refresh_batch(db, organisation_id, assets[start : start + 500], settings, horizon)


async def _refresh_batch(
    db: AsyncSession,
    organisation_id: uuid.UUID,
    assets: Sequence[Any],
    settings: Settings,
    horizon: Horizon,
) -> None:
    ids = [a.id for a in assets]
    rules = await _rules_by_type(db, organisation_id, assets)
    routines: dict[uuid.UUID, dict[str, ScheduleRoutine]] = defaultdict(dict)
    for routine in (
        await db.execute(select(ScheduleRoutine).where(ScheduleRoutine.asset_id.in_(ids)))
    ).scalars():
        routines[routine.asset_id][routine.rule_code] = routine
    baseline_rows = await db.execute(
        select(AssetBaseline.asset_id, AssetBaseline.baseline_on).where(
            AssetBaseline.asset_id.in_(ids)
        )
    )
    baselines: dict[uuid.UUID, date] = {row[0]: row[1] for row in baseline_rows}
    facts = {
        a.id: _AssetFacts(a, a.state, rules[a.id], routines[a.id], baselines.get(a.id))
        for a in assets
    }
    await _sync_routines(db, organisation_id, facts)
    services = await _services(db, organisation_id, facts, settings)
    existing: dict[uuid.UUID, dict[uuid.UUID, dict[int, Any]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    rows = await db.execute(select(_O.__table__).where(_O.asset_id.in_(ids)))
    for row in rows.mappings():
        existing[row["asset_id"]][row["routine_id"]][row["seq"]] = row
    writes = _Writes()
    for fact in facts.values():
        _plan_writes(
            db, fact, services.get(fact.asset.id, []), horizon, existing[fact.asset.id], writes
        )
    await writes.apply(db)


async def _sync_routines(
    db: AsyncSession, organisation_id: uuid.UUID, facts: dict[uuid.UUID, _AssetFacts]
) -> None:
    """Routines follow the catalogue: one per applicable rule (a rule that stops applying
    takes its routine and occurrences with it)."""
    stale = [
        routine.id
        for fact in facts.values()
        for code, routine in fact.routines.items()
        if code not in fact.rules
    ]
    if stale:
        await db.execute(delete(ScheduleRoutine).where(ScheduleRoutine.id.in_(stale)))
    for fact in facts.values():
        for code in [c for c in fact.routines if c not in fact.rules]:
            del fact.routines[code]
        for code, frequency in fact.rules.items():
            routine = fact.routines.get(code)
            if routine is None:
                routine = ScheduleRoutine(
                    id=uuid.uuid4(),
                    organisation_id=organisation_id,
                    asset_id=fact.asset.id,
                    rule_code=code,
                    frequency=frequency.value,
                )
                db.add(routine)
                fact.routines[code] = routine
            elif routine.frequency != frequency.value:
                routine.frequency = frequency.value
    await db.flush()


def _baseline(fact: _AssetFacts, routine: ScheduleRoutine) -> tuple[date | None, str | None]:
    if routine.baseline_on is not None:
        return routine.baseline_on, BaselineSource.routine
    if fact.baseline is not None:
        return fact.baseline, BaselineSource.asset
    if fact.asset.installed_on is not None:
        return fact.asset.installed_on, BaselineSource.installed_on
    return None, None


@dataclass
class _Writes:
    """What a batch of assets' refresh writes, gathered so each kind is one statement."""

    inserts: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    deleted_ids: list[uuid.UUID] = field(default_factory=list)
    reset_routines: list[uuid.UUID] = field(default_factory=list)

    async def apply(self, db: AsyncSession) -> None:
        if self.reset_routines:
            await db.execute(delete(_O).where(_O.routine_id.in_(self.reset_routines)))
        if self.deleted_ids:
            await db.execute(delete(_O).where(_O.id.in_(self.deleted_ids)))
        if self.updates:
            # Core (not ORM) executemany: one prepared statement for every changed row.
            table = cast(Table, _O.__table__)
            await db.execute(
                update(table)
                .where(table.c.id == bindparam("row_id"))
                .values({name: bindparam(f"v_{name}") for name in _UPDATED}),
                [
                    {"row_id": u["row_id"], **{f"v_{n}": u[n] for n in _UPDATED}}
                    for u in self.updates
                ],
            )
        if self.inserts:
            await db.execute(insert(_O), self.inserts)
        await db.flush()


_VALUES = (
    "building_id",
    "asset_id",
    "rule_code",
    "frequency",
    "due_on",
    "window_start",
    "window_end",
    "done_on",
    "done_session_id",
    "outcome",
)
_UPDATED = (*_VALUES, "out_of_tolerance_noted_at", "updated_at")


def _plan_writes(
    db: AsyncSession,
    fact: _AssetFacts,
    services: list[Service],
    horizon: Horizon,
    existing: dict[uuid.UUID, dict[int, Any]],
    writes: _Writes,
) -> None:
    """Compares the asset's plan with its rows; queues the differences (and events)."""
    routine_rows = list(fact.routines.values())
    planned_routines = [
        Routine(r.rule_code, Frequency(r.frequency), _baseline(fact, r)[0]) for r in routine_rows
    ]
    plan = plan_asset(
        planned_routines,
        services,
        WorkingDays(AustralianState(fact.state) if fact.state else None),
        since=horizon.since,
        until=horizon.until,
    )
    now = utc_now()
    for routine in routine_rows:
        source = _baseline(fact, routine)[1]
        effective = plan.baselines[routine.rule_code]
        if source is None and effective is not None:
            source = BaselineSource.first_service
        rows: dict[int, Any] = existing.get(routine.id, {})
        if routine.effective_baseline_on != effective:
            # Another baseline: every scheduled date moves, history included.
            if rows:
                writes.reset_routines.append(routine.id)
            rows = {}
        routine.effective_baseline_on = effective
        routine.baseline_source = source
        routine.materialised_until = horizon.until
        planned = {o.seq: o for o in plan.occurrences[routine.rule_code]}
        for seq, occurrence in planned.items():
            values = _values(fact, routine, occurrence)
            current = rows.get(seq)
            out = _out_of_tolerance(occurrence, horizon.today)
            if current is None:
                # Already out of tolerance when first seen: history, not an event.
                writes.inserts.append(
                    {
                        **values,
                        "id": uuid.uuid4(),
                        "organisation_id": routine.organisation_id,
                        "routine_id": routine.id,
                        "seq": seq,
                        "out_of_tolerance_noted_at": now if out else None,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                continue
            noted = current["out_of_tolerance_noted_at"]
            if noted is None and out:
                noted = now
                events.out_of_tolerance(db, row=dict(current) | values, at=now)
            if noted != current["out_of_tolerance_noted_at"] or any(
                current[k] != v for k, v in values.items()
            ):
                writes.updates.append(
                    {
                        **values,
                        "row_id": current["id"],
                        "out_of_tolerance_noted_at": noted,
                        "updated_at": now,
                    }
                )
        writes.deleted_ids.extend(
            row["id"]
            for seq, row in rows.items()
            if seq not in planned and row["window_end"] >= horizon.since
        )


def _values(fact: _AssetFacts, routine: ScheduleRoutine, occurrence: Occurrence) -> dict[str, Any]:
    return {
        "building_id": fact.asset.building_id,
        "asset_id": fact.asset.id,
        "rule_code": routine.rule_code,
        "frequency": routine.frequency,
        "due_on": occurrence.due_on,
        "window_start": occurrence.window.start,
        "window_end": occurrence.window.end,
        "done_on": occurrence.done_on,
        "done_session_id": occurrence.session_id,
        "outcome": occurrence.outcome.value if occurrence.outcome else None,
    }


def _out_of_tolerance(occurrence: Occurrence, today: date) -> bool:
    if occurrence.done_on is None:
        return occurrence.window.end < today
    return occurrence.outcome is Outcome.out_of_tolerance


async def sweep(db: AsyncSession, *, settings: Settings, today: date | None = None) -> int:
    """The daily job: writes the event of every open occurrence whose window ended (once),
    and moves every routine's horizon forward. Returns how many events it wrote."""
    horizon = Horizon.of(settings, today)
    written = 0
    while True:
        rows = (
            (
                await db.execute(
                    select(_O.__table__)
                    .where(
                        _O.done_on.is_(None),
                        _O.out_of_tolerance_noted_at.is_(None),
                        _O.window_end < horizon.today,
                    )
                    .limit(1000)
                )
            )
            .mappings()
            .all()
        )
        if not rows:
            break
        now = utc_now()
        for row in rows:
            events.out_of_tolerance(db, row=dict(row), at=now)
        await db.execute(
            update(_O)
            .where(_O.id.in_([r["id"] for r in rows]))
            .values(out_of_tolerance_noted_at=now)
        )
        written += len(rows)
    behind = (
        await db.execute(
            select(ScheduleRoutine.organisation_id, ScheduleRoutine.asset_id)
            .where(
                or_(
                    ScheduleRoutine.materialised_until.is_(None),
                    ScheduleRoutine.materialised_until < horizon.until,
                )
            )
            .distinct()
        )
    ).all()
    per_org: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for organisation_id, asset_id in behind:
        per_org[organisation_id].append(asset_id)
    for organisation_id, asset_ids in per_org.items():
        await refresh_assets(
            db,
            organisation_id=organisation_id,
            settings=settings,
            asset_ids=asset_ids,
            horizon=horizon,
        )
    return written


async def ensure_materialised(
    db: AsyncSession, *, organisation_id: uuid.UUID, until: date, settings: Settings
) -> bool:
    """Extends the horizon of the organisation's routines that stop before ``until`` (only
    when the daily sweep has not run); returns whether anything had to be written."""
    behind = (
        (
            await db.execute(
                select(ScheduleRoutine.asset_id)
                .where(
                    ScheduleRoutine.organisation_id == organisation_id,
                    ScheduleRoutine.materialised_until < until,
                )
                .distinct()
            )
        )
        .scalars()
        .all()
    )
    if not behind:
        return False
    horizon = Horizon.of(settings)
    horizon = Horizon(horizon.today, horizon.since, max(horizon.until, until))
    await refresh_assets(
        db,
        organisation_id=organisation_id,
        settings=settings,
        asset_ids=behind,
        horizon=horizon,
    )
    return True
