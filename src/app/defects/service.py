"""Defect flows: raising (by hand or from a completed session), moving, deadlines, overdue.

Every change appends to the defect's history and writes its outbox event in the caller's
transaction, so the three commit together or not at all.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.core import audit
from src.app.core.clock import utc_now
from src.app.core.errors import ApiError
from src.app.core.metrics import DEFECTS_OVERDUE, DEFECTS_OVERDUE_MARKED
from src.app.core.outbox import emit, register_event_types
from src.app.core.settings import Settings
from src.app.core.tenancy import Principal, Role
from src.app.defects.evaluation import evaluate_session
from src.app.defects.lifecycle import (
    DEFECT_LIFECYCLE,
    DefectStatus,
    response_due_at,
    response_hours,
    verification_refusal,
)
from src.app.defects.models import Defect, DefectDeadline, DefectEvent
from src.app.defects.schemas import DefectOut
from src.app.rules.checklist import Severity
from src.app.sessions.models import TestSession

RAISED, STATUS_CHANGED, OVERDUE = "defect.raised", "defect.status_changed", "defect.overdue"
register_event_types(RAISED, STATUS_CHANGED, OVERDUE)


async def deadline_overrides(db: AsyncSession, organisation_id: uuid.UUID) -> dict[str, int | None]:
    rows = await db.execute(
        select(DefectDeadline.severity, DefectDeadline.response_hours).where(
            DefectDeadline.organisation_id == organisation_id
        )
    )
    return {severity: hours for severity, hours in rows.all()}


async def deadlines(db: AsyncSession, organisation_id: uuid.UUID) -> dict[str, int | None]:
    """Every severity's response deadline in hours (null: none) for the organisation."""
    overrides = await deadline_overrides(db, organisation_id)
    return {s.value: response_hours(overrides, s) for s in Severity}


async def set_deadlines(
    db: AsyncSession, organisation_id: uuid.UUID, hours: dict[str, int | None]
) -> None:
    for severity, value in hours.items():
        row = await db.get(DefectDeadline, (organisation_id, severity), with_for_update=True)
        if row is None:
            db.add(
                DefectDeadline(
                    organisation_id=organisation_id, severity=severity, response_hours=value
                )
            )
        else:
            row.response_hours = value


def _record(
    db: AsyncSession,
    defect: Defect,
    *,
    from_status: DefectStatus | None,
    to_status: DefectStatus,
    actor_id: uuid.UUID | None,
    note: str = "",
    changes: dict[str, Any] | None = None,
    now: datetime,
) -> None:
    db.add(
        DefectEvent(
            defect_id=defect.id,
            organisation_id=defect.organisation_id,
            from_status=from_status.value if from_status else None,
            to_status=to_status.value,
            note=note,
            changes=changes or {},
            actor_id=actor_id,
            created_at=now,
        )
    )


def _payload(defect: Defect, now: datetime, **extra: Any) -> dict[str, Any]:
    return {"defect": DefectOut.of(defect, now).model_dump(mode="json"), **extra}


async def raise_defect(
    db: AsyncSession,
    *,
    organisation_id: uuid.UUID,
    building_id: uuid.UUID,
    severity: Severity,
    remark: str,
    source: str,
    actor_id: uuid.UUID | None,
    now: datetime,
    overrides: dict[str, int | None] | None = None,
    **links: Any,
) -> Defect:
    """Adds an open defect with its history entry and ``defect.raised`` event (flushed).

    ``links``: asset_id, session_id, rule_version_id, rule_code, rule_version, item_key,
    evidence_ids, origin_key.
    """
    if overrides is None:
        overrides = await deadline_overrides(db, organisation_id)
    defect = Defect(
        id=uuid.uuid4(),
        organisation_id=organisation_id,
        building_id=building_id,
        severity=severity.value,
        status=DefectStatus.open.value,
        remark=remark,
        source=source,
        raised_by=actor_id,
        response_due_at=response_due_at(now, response_hours(overrides, severity)),
        created_at=now,
        updated_at=now,
        **{"evidence_ids": [], **links},
    )
    db.add(defect)
    await db.flush()
    _record(db, defect, from_status=None, to_status=DefectStatus.open, actor_id=actor_id, now=now)
    await audit.record(
        db,
        organisation_id=organisation_id,
        actor=audit.Actor.user(actor_id) if actor_id else audit.SYSTEM,
        action="defect.raised",
        subject_type="defect",
        subject_id=defect.id,
        payload={
            "severity": defect.severity,
            "building_id": building_id,
            "asset_id": defect.asset_id,
            "session_id": defect.session_id,
            "source": source,
            "remark": remark,
        },
        now=now,
    )
    emit(
        db,
        organisation_id=organisation_id,
        event_type=RAISED,
        payload=_payload(defect, now),
        at=now,
    )
    return defect


def origin_key(session_id: uuid.UUID, asset_id: uuid.UUID, rule_code: str, item_key: str) -> str:
    return f"{session_id}/{asset_id}/{rule_code}/{item_key}"


async def raise_session_defects(
    db: AsyncSession, test_session: TestSession, by: Principal, _settings: Settings
) -> None:
    """The completion hook: raises what the session's evaluation implies, once.

    Runs in the completing transaction, under the session's row lock; ``origin_key`` is
    unique, so even a second run could not raise the same defect twice.
    """
    now = utc_now()
    evaluation = await evaluate_session(db, test_session, now=now)
    implied = list(evaluation.implied_defects())
    if not implied:
        return
    existing = set(
        (
            await db.execute(select(Defect.origin_key).where(Defect.session_id == test_session.id))
        ).scalars()
    )
    overrides = await deadline_overrides(db, test_session.organisation_id)
    for found in implied:
        key = origin_key(
            test_session.id, found.asset.id, found.applicable.rule.code, found.item_key
        )
        if key in existing:
            continue
        await raise_defect(
            db,
            organisation_id=test_session.organisation_id,
            building_id=found.asset.building_id,
            severity=found.defect.severity,
            remark=found.defect.remark,
            source="evaluation",
            actor_id=by.user_id,
            now=now,
            overrides=overrides,
            asset_id=found.asset.id,
            session_id=test_session.id,
            rule_version_id=found.applicable.version.id,
            rule_code=found.applicable.rule.code,
            rule_version=found.applicable.version.version,
            item_key=found.item_key,
            origin_key=key,
        )


async def _repaired_by(db: AsyncSession, defect_id: uuid.UUID) -> uuid.UUID | None:
    """Who marked the defect repaired most recently."""
    return (
        await db.execute(
            select(DefectEvent.actor_id)
            .where(
                DefectEvent.defect_id == defect_id,
                DefectEvent.to_status == DefectStatus.repaired.value,
            )
            .order_by(DefectEvent.created_at.desc())
            .limit(1)
        )
    ).scalar_one_or_none()


async def change_defect(
    db: AsyncSession,
    defect: Defect,
    principal: Principal,
    *,
    changes: dict[str, Any],
    note: str | None,
    now: datetime,
) -> None:
    """Applies a PATCH: edits first (recorded as one history entry), then the status move."""
    current = DefectStatus(defect.status)
    target: DefectStatus | None = changes.pop("status", None)
    moving = target is not None and target is not current
    if DEFECT_LIFECYCLE.is_terminal(current) and (changes or moving):
        raise ApiError(409, DEFECT_LIFECYCLE.refusal(current, current) or "")
    if moving:
        assert target is not None
        refusal = DEFECT_LIFECYCLE.refusal(current, target)
        if refusal is not None:
            raise ApiError(409, refusal)
        if target is DefectStatus.cancelled:
            if principal.role is not Role.admin:
                raise ApiError(403, "Only an admin may cancel a defect")
            if not (note or "").strip():
                raise ApiError(422, "Cancelling a defect needs its reason in `note`")
        if target is DefectStatus.verified:
            refusal = verification_refusal(await _repaired_by(db, defect.id), principal.user_id)
            if refusal is not None:
                raise ApiError(403, refusal)
    edits: dict[str, list[Any]] = {}
    for name, value in changes.items():
        stored = value.value if isinstance(value, Severity) else value
        if getattr(defect, name) != stored:
            edits[name] = [getattr(defect, name), stored]
            setattr(defect, name, stored)
    if "severity" in edits and current is DefectStatus.open:
        # The deadline follows the corrected severity while nobody has responded yet.
        overrides = await deadline_overrides(db, defect.organisation_id)
        defect.response_due_at = response_due_at(
            defect.created_at, response_hours(overrides, Severity(defect.severity))
        )
    if edits and not moving:
        await audit.record_by(
            db, principal, "defect.updated", "defect", defect.id, {"edits": edits}, now=now
        )
    if edits:
        defect.updated_at = now
        _record(
            db,
            defect,
            from_status=current,
            to_status=current,
            actor_id=principal.user_id,
            note="" if moving else (note or ""),
            changes=edits,
            now=now,
        )
    if moving:
        assert target is not None
        defect.status = target.value
        defect.updated_at = now
        if target is DefectStatus.acknowledged:
            defect.acknowledged_at = now
        if target is DefectStatus.cancelled:
            defect.cancel_reason = note
        _record(
            db,
            defect,
            from_status=current,
            to_status=target,
            actor_id=principal.user_id,
            note=note or "",
            now=now,
        )
        await audit.record_by(
            db,
            principal,
            "defect.status_changed",
            "defect",
            defect.id,
            {"from": current.value, "to": target.value, "note": note or "", "edits": edits},
            now=now,
        )
        emit(
            db,
            organisation_id=defect.organisation_id,
            event_type=STATUS_CHANGED,
            payload=_payload(
                defect,
                now,
                from_status=current.value,
                to_status=target.value,
                note=note or "",
                actor_id=str(principal.user_id),
            ),
            at=now,
        )
    await db.flush()


async def history(db: AsyncSession, defect_id: uuid.UUID) -> list[DefectEvent]:
    rows = await db.execute(
        select(DefectEvent)
        .where(DefectEvent.defect_id == defect_id)
        .order_by(DefectEvent.created_at, DefectEvent.id)
    )
    return list(rows.scalars())


async def sweep_overdue(db: AsyncSession, *, now: datetime, limit: int = 500) -> int:
    """Marks newly overdue defects and writes their ``defect.overdue`` events (the caller
    commits). Rows another worker is sweeping are skipped (PostgreSQL SKIP LOCKED)."""
    statement = (
        select(Defect)
        .where(
            Defect.status == DefectStatus.open.value,
            Defect.response_due_at < now,
            Defect.overdue_notified_at.is_(None),
        )
        .order_by(Defect.response_due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    found = list((await db.execute(statement)).scalars())
    for defect in found:
        defect.overdue_notified_at = now
        emit(
            db,
            organisation_id=defect.organisation_id,
            event_type=OVERDUE,
            payload=_payload(defect, now),
            at=now,
        )
    await db.flush()
    DEFECTS_OVERDUE_MARKED.inc(len(found))
    total = await db.scalar(
        select(func.count())
        .select_from(Defect)
        .where(Defect.status == DefectStatus.open.value, Defect.response_due_at < now)
    )
    DEFECTS_OVERDUE.set(int(total or 0))
    return len(found)
