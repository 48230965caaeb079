"""The yearly condition report's content and order, from its facts. Pure: no I/O.

What goes in (AS 1851-2012 Appendix E, as summarised in docs/api/reports.md):

1. who and what: the organisation, the building and its address, the period;
2. per system (asset type): the routine services that fell due in the period, done on
   time, late but within tolerance, out of tolerance, and missed;
3. per system: its operational status at generation (``inoperative`` with an open
   critical defect, ``impaired`` with an open non-critical defect, else
   ``operational``);
4. defects: every critical defect whatever its status; the open non-critical defects;
   the open non-conformances;
5. the statement of whether the systems generally accord with their design, with the
   responsible person's name and licence number;
6. the audit position the report was built from.

Ordering is total, so that one set of facts always gives the same document: systems by
label; services by due date, routine, reference; defects by date raised, then id.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from src.app.core.clock import to_rfc3339
from src.app.reports.facts import Defect, Occurrence, ReportFacts, ServiceStatus

REPORT_TYPE = "yearly_condition"
SERVICE_STATUSES: tuple[ServiceStatus, ...] = (
    "on_time",
    "late",
    "out_of_tolerance",
    "missed",
    "open",
)
SERVICE_STATUS_LABELS = {
    "on_time": "Done on time",
    "late": "Done late, within tolerance",
    "out_of_tolerance": "Done out of tolerance",
    "missed": "Missed",
    "open": "Window still open at the end of the period",
}
SYSTEM_LABELS = {
    "fire_extinguisher": "Portable fire extinguishers",
    "fire_blanket": "Fire blankets",
    "fire_hose_reel": "Fire hose reels",
    "fire_hydrant": "Fire hydrant systems",
    "sprinkler_valve_set": "Automatic fire sprinkler systems",
    "fire_pump": "Fire pump sets",
    "fire_detection_panel": "Fire detection and alarm systems",
    "smoke_detector": "Smoke detectors",
    "heat_detector": "Heat detectors",
    "ewis": "Emergency warning and intercommunication systems",
    "emergency_light": "Emergency lighting",
    "exit_sign": "Exit signs",
    "fire_door": "Fire and smoke doors",
    "smoke_door": "Smoke doors",
    "smoke_control": "Smoke control systems",
    "water_storage": "Water storage tanks",
    "smoke_damper": "Smoke dampers",
    "fire_damper": "Fire dampers",
    "other": "Other equipment",
    "building": "Building (no particular asset)",
}


def system_label(system: str) -> str:
    return SYSTEM_LABELS.get(system, system.replace("_", " ").capitalize())


def classify(
    *, due_on: date, window_start: date, window_end: date, done_on: date | None, as_of: date
) -> ServiceStatus:
    """How a routine occurrence went, judged at ``as_of`` (the end of the period)."""
    if done_on is None or done_on > as_of:
        return "missed" if window_end < as_of else "open"
    if window_start <= done_on <= due_on:
        return "on_time"
    if due_on < done_on <= window_end:
        return "late"
    return "out_of_tolerance"


@dataclass(frozen=True, slots=True)
class Statement:
    accords_with_design: bool
    text: str
    responsible_person: str
    licence_number: str


@dataclass(frozen=True, slots=True)
class ReportMeta:
    report_id: uuid.UUID
    organisation_id: uuid.UUID
    building_id: uuid.UUID
    period_start: date
    period_end: date
    generated_at: datetime
    statement: Statement
    audit_position: int
    audit_hash: str


def _service(o: Occurrence) -> dict[str, Any]:
    return {
        "routine": o.routine,
        "due_on": o.due_on.isoformat(),
        "window": {"start": o.window_start.isoformat(), "end": o.window_end.isoformat()},
        "done_on": o.done_on.isoformat() if o.done_on else None,
        "assets": o.assets,
        "reference": o.reference,
    }


def _defect(d: Defect) -> dict[str, Any]:
    return {
        "id": d.id,
        "system": d.system,
        "system_label": system_label(d.system),
        "asset": d.asset,
        "class": d.defect_class,
        "status": d.status,
        "description": d.description,
        "raised_on": d.raised_on.isoformat(),
    }


def _defect_order(d: Defect) -> tuple[date, str]:
    return d.raised_on, d.id


def operational_status(system: str, defects: tuple[Defect, ...]) -> str:
    open_classes = {d.defect_class for d in defects if d.system == system and d.is_open}
    if "critical" in open_classes:
        return "inoperative"
    if "non_critical" in open_classes:
        return "impaired"
    return "operational"


def build_report(facts: ReportFacts, meta: ReportMeta) -> dict[str, Any]:
    """The report document (what the JSON is, and what the PDF shows)."""
    systems: list[dict[str, Any]] = []
    for system in sorted(facts.systems, key=lambda s: (system_label(s.system), s.system)):
        mine = sorted(
            (o for o in facts.occurrences if o.system == system.system),
            key=lambda o: (o.due_on, o.routine, o.reference),
        )
        services = {
            status: [_service(o) for o in mine if o.status == status] for status in SERVICE_STATUSES
        }
        systems.append(
            {
                "system": system.system,
                "label": system_label(system.system),
                "assets": system.assets,
                "operational_status": operational_status(system.system, facts.defects),
                "counts": {status: len(items) for status, items in services.items()},
                "services": services,
            }
        )
    defects = sorted(facts.defects, key=_defect_order)
    statement = meta.statement
    return {
        "report": {
            "id": str(meta.report_id),
            "type": REPORT_TYPE,
            "standard": "AS 1851-2012",
            "period": {"start": meta.period_start.isoformat(), "end": meta.period_end.isoformat()},
            "generated_at": to_rfc3339(meta.generated_at),
        },
        "organisation": {"id": str(meta.organisation_id), "name": facts.organisation_name},
        "building": {
            "id": str(meta.building_id),
            "name": facts.building_name,
            "address": facts.building_address,
        },
        "systems": systems,
        "defects": {
            "critical": [_defect(d) for d in defects if d.defect_class == "critical"],
            "non_critical_open": [
                _defect(d) for d in defects if d.defect_class == "non_critical" and d.is_open
            ],
            "non_conformances_open": [
                _defect(d) for d in defects if d.defect_class == "non_conformance" and d.is_open
            ],
        },
        "statement": {
            "accords_with_design": statement.accords_with_design,
            "text": statement.text,
            "responsible_person": statement.responsible_person,
            "licence_number": statement.licence_number,
        },
        "audit": {"position": meta.audit_position, "hash": meta.audit_hash},
    }
