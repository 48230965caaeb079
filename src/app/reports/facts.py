"""What a report is built from: plain facts gathered from the database, no I/O here.

Facts are gathered once, when the report is created, and stored with it (as canonical
JSON): the report can be rendered again at any time, byte for byte, from them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any, Literal

ServiceStatus = Literal["on_time", "late", "out_of_tolerance", "missed", "open"]
DefectClass = Literal["critical", "non_critical", "non_conformance"]
OPEN_DEFECT_STATES = frozenset({"open", "acknowledged", "quoted", "repair_scheduled", "repaired"})
"""Defect states that still need work (``verified``, ``closed`` and ``cancelled`` do not)."""


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One routine service that fell due in the period, and what became of it."""

    system: str  # the asset type
    routine: str  # the frequency, e.g. "monthly"
    due_on: date
    window_start: date
    window_end: date
    done_on: date | None
    assets: int  # how many of the system's assets it covers
    reference: str  # e.g. the session that did it
    status: ServiceStatus


@dataclass(frozen=True, slots=True)
class DefectEvent:
    on: date
    status: str


@dataclass(frozen=True, slots=True)
class Defect:
    id: str
    system: str
    asset: str  # barcode or location
    defect_class: DefectClass
    status: str
    description: str
    raised_on: date
    events: tuple[DefectEvent, ...] = ()

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_DEFECT_STATES


@dataclass(frozen=True, slots=True)
class System:
    system: str  # asset type
    assets: int


@dataclass(frozen=True, slots=True)
class ReportFacts:
    organisation_name: str
    building_name: str
    building_address: str
    systems: tuple[System, ...]
    occurrences: tuple[Occurrence, ...]
    defects: tuple[Defect, ...] = field(default=())

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = _jsonable(asdict(self))
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReportFacts:
        return cls(
            organisation_name=data["organisation_name"],
            building_name=data["building_name"],
            building_address=data["building_address"],
            systems=tuple(System(**s) for s in data["systems"]),
            occurrences=tuple(
                Occurrence(
                    **{
                        **o,
                        "due_on": date.fromisoformat(o["due_on"]),
                        "window_start": date.fromisoformat(o["window_start"]),
                        "window_end": date.fromisoformat(o["window_end"]),
                        "done_on": date.fromisoformat(o["done_on"]) if o["done_on"] else None,
                    }
                )
                for o in data["occurrences"]
            ),
            defects=tuple(
                Defect(
                    **{
                        **d,
                        "raised_on": date.fromisoformat(d["raised_on"]),
                        "events": tuple(
                            DefectEvent(date.fromisoformat(e["on"]), e["status"])
                            for e in d["events"]
                        ),
                    }
                )
                for d in data["defects"]
            ),
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    return value
