"""Gathering a report's facts from the database (the only I/O of a report).

Each kind of fact has its own function, so that its source can change without touching
the layout: routine occurrences come from the building's test sessions until the
schedule domain provides per-asset routines; defects come from the defects domain once
it exists (none until then).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.buildings.models import Asset, Building
from src.app.core.audit_model import AuditEntry
from src.app.identity.models import Organisation
from src.app.reports.facts import Defect, Occurrence, ReportFacts, System
from src.app.reports.layout import classify
from src.app.reports.windows import tolerance_window
from src.app.rules.frequency import Frequency
from src.app.sessions.models import SessionStatus, TestSession


@dataclass(frozen=True, slots=True)
class Period:
    start: date
    end: date


async def gather_systems(db: AsyncSession, building: Building) -> tuple[System, ...]:
    """The building's systems: its asset types, with how many assets each."""
    rows = await db.execute(
        select(Asset.asset_type, func.count())
        .where(Asset.organisation_id == building.organisation_id, Asset.building_id == building.id)
        .group_by(Asset.asset_type)
        .order_by(Asset.asset_type)
    )
    return tuple(System(asset_type, int(count)) for asset_type, count in rows)


async def _completion_days(db: AsyncSession, building: Building, ids: list[str]) -> dict[str, date]:
    """When each session was completed, as the audit trail recorded it."""
    if not ids:
        return {}
    rows = await db.execute(
        select(AuditEntry.subject_id, AuditEntry.payload, AuditEntry.created_at).where(
            AuditEntry.organisation_id == building.organisation_id,
            AuditEntry.action == "test_session.status_changed",
            AuditEntry.subject_type == "test_session",
            AuditEntry.subject_id.in_(ids),
        )
    )
    done: dict[str, date] = {}
    for subject_id, payload, created_at in rows:
        if payload.get("to") == SessionStatus.completed.value:
            day = created_at.date()
            done[subject_id] = min(day, done.get(subject_id, day))
    return done


async def gather_occurrences(
    db: AsyncSession, building: Building, systems: tuple[System, ...], period: Period
) -> tuple[Occurrence, ...]:
    """Routine occurrences due in the period, judged at its end.

    Source until the schedule domain lands: each test session of the building with a
    frequency and a scheduled day in the period is one routine visit of every system of
    the building; it was done on the day the audit trail recorded its completion.
    """
    sessions = (
        await db.execute(
            select(
                TestSession.id,
                TestSession.session_name,
                TestSession.frequency,
                TestSession.scheduled_for,
                TestSession.status,
                TestSession.updated_at,
            )
            .where(
                TestSession.organisation_id == building.organisation_id,
                TestSession.building_id == building.id,
                TestSession.frequency.is_not(None),
                TestSession.scheduled_for >= period.start,
                TestSession.scheduled_for <= period.end,
            )
            .order_by(TestSession.scheduled_for, TestSession.id)
        )
    ).all()
    done = await _completion_days(db, building, [str(s.id) for s in sessions])
    occurrences: list[Occurrence] = []
    for s in sessions:
        frequency = Frequency(s.frequency)
        start, end = tolerance_window(s.scheduled_for, frequency)
        done_on = done.get(str(s.id))
        if done_on is None and s.status == SessionStatus.completed.value:
            done_on = s.updated_at.date()  # completed before the audit trail existed
        status = classify(
            due_on=s.scheduled_for,
            window_start=start,
            window_end=end,
            done_on=done_on,
            as_of=period.end,
        )
        reference = f"{s.session_name or 'session'} ({str(s.id)[:8]})"
        for system in systems:
            occurrences.append(
                Occurrence(
                    system=system.system,
                    routine=frequency.value,
                    due_on=s.scheduled_for,
                    window_start=start,
                    window_end=end,
                    done_on=done_on if status != "missed" and status != "open" else None,
                    assets=system.assets,
                    reference=reference,
                    status=status,
                )
            )
    return tuple(occurrences)


async def gather_defects(
    db: AsyncSession, building: Building, period: Period
) -> tuple[Defect, ...]:
    """The building's defects (every critical one; the rest filtered by the layout)."""
    return ()


async def gather_facts(db: AsyncSession, building: Building, period: Period) -> ReportFacts:
    organisation = await db.get(Organisation, building.organisation_id)
    assert organisation is not None
    systems = await gather_systems(db, building)
    return ReportFacts(
        organisation_name=organisation.name,
        building_name=building.name,
        building_address=building.address,
        systems=systems,
        occurrences=await gather_occurrences(db, building, systems, period),
        defects=await gather_defects(db, building, period),
    )
