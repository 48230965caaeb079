"""A defect's life cycle and deadlines (pure).

open → acknowledged → quoted → repair_scheduled → repaired → verified → closed. A quote may
be skipped (acknowledged → repair_scheduled); a failed verification sends a repaired defect
back to repair_scheduled. Any status before verified may be cancelled (admins, with a
reason). closed and cancelled are final.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum

from src.app.core.transitions import StateMachine
from src.app.rules.checklist import Severity


class DefectStatus(StrEnum):
    open = "open"
    acknowledged = "acknowledged"
    quoted = "quoted"
    repair_scheduled = "repair_scheduled"
    repaired = "repaired"
    verified = "verified"
    closed = "closed"
    cancelled = "cancelled"


D = DefectStatus
DEFECT_LIFECYCLE = StateMachine(
    "defect",
    {
        D.open: frozenset({D.acknowledged, D.cancelled}),
        D.acknowledged: frozenset({D.quoted, D.repair_scheduled, D.cancelled}),
        D.quoted: frozenset({D.repair_scheduled, D.cancelled}),
        D.repair_scheduled: frozenset({D.repaired, D.cancelled}),
        D.repaired: frozenset({D.verified, D.repair_scheduled, D.cancelled}),
        D.verified: frozenset({D.closed}),
        D.closed: frozenset(),
        D.cancelled: frozenset(),
    },
)

DEFAULT_RESPONSE_HOURS: dict[Severity, int | None] = {
    Severity.critical: 24,
    Severity.non_critical: None,
    Severity.non_conformance: None,
    Severity.recommendation: None,
    Severity.informational: None,
}


def response_hours(overrides: Mapping[str, int | None], severity: Severity) -> int | None:
    """The organisation's deadline for ``severity`` (its override, else the default)."""
    if severity.value in overrides:
        return overrides[severity.value]
    return DEFAULT_RESPONSE_HOURS[severity]


def response_due_at(raised_at: datetime, hours: int | None) -> datetime | None:
    return None if hours is None else raised_at + timedelta(hours=hours)


def is_overdue(status: DefectStatus, due_at: datetime | None, now: datetime) -> bool:
    """Past its response deadline and still not acknowledged."""
    return status is DefectStatus.open and due_at is not None and now > due_at


def verification_refusal(repaired_by: uuid.UUID | None, actor: uuid.UUID) -> str | None:
    """Separation of duties: whoever marked the repair cannot verify it."""
    if repaired_by is not None and repaired_by == actor:
        return "A defect must be verified by a different person from the one who marked it repaired"
    return None
