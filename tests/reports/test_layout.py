"""The report's content rules, on facts alone (no database)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from src.app.reports.facts import Defect, DefectEvent, Occurrence, ReportFacts, System
from src.app.reports.layout import ReportMeta, Statement, build_report, classify
from src.app.reports.logbook import logbook_csv

STATES = (
    "open",
    "acknowledged",
    "quoted",
    "repair_scheduled",
    "repaired",
    "verified",
    "closed",
    "cancelled",
)
CLASSES = ("critical", "non_critical", "non_conformance")


def _facts() -> ReportFacts:
    defects = tuple(
        Defect(
            id=f"{cls}-{state}",
            system="fire_hydrant" if cls == "critical" else "fire_extinguisher",
            asset="A-1",
            defect_class=cls,  # type: ignore[arg-type]
            status=state,
            description=f"{cls} {state}",
            raised_on=date(2025, 1, 1) + timedelta(days=index),
            events=(DefectEvent(date(2025, 1, 1), "open"), DefectEvent(date(2025, 2, 1), state)),
        )
        for index, (cls, state) in enumerate((c, s) for c in CLASSES for s in STATES)
    )
    occurrence = Occurrence(
        "fire_extinguisher",
        "monthly",
        date(2025, 3, 14),
        date(2025, 3, 7),
        date(2025, 3, 21),
        date(2025, 3, 18),
        3,
        "s1",
        "late",
    )
    return ReportFacts(
        organisation_name="Acme",
        building_name="Tower",
        building_address="1 Main St",
        systems=(System("fire_extinguisher", 3), System("fire_hydrant", 1), System("exit_sign", 2)),
        occurrences=(occurrence,),
        defects=defects,
    )


META = ReportMeta(
    uuid.UUID(int=1),
    uuid.UUID(int=2),
    uuid.UUID(int=3),
    date(2025, 1, 1),
    date(2025, 12, 31),
    datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
    Statement(True, "ok", "Jane Citizen", "L-1"),
    7,
    "ab" * 32,
)


def test_defects_listed_as_the_rules_say() -> None:
    doc = build_report(_facts(), META)
    defects = doc["defects"]
    # Every critical defect, whatever its status; only the open others.
    assert [d["status"] for d in defects["critical"]] == list(STATES)
    open_states = ["open", "acknowledged", "quoted", "repair_scheduled", "repaired"]
    assert [d["status"] for d in defects["non_critical_open"]] == open_states
    assert [d["status"] for d in defects["non_conformances_open"]] == open_states
    statuses = {s["system"]: s["operational_status"] for s in doc["systems"]}
    assert statuses == {
        "fire_hydrant": "inoperative",
        "fire_extinguisher": "impaired",
        "exit_sign": "operational",
    }
    # Systems in label order; the late service listed under its system only.
    assert [s["label"] for s in doc["systems"]] == [
        "Exit signs",
        "Fire hydrant systems",
        "Portable fire extinguishers",
    ]
    extinguishers = doc["systems"][2]
    assert extinguishers["counts"] == {
        "on_time": 0,
        "late": 1,
        "out_of_tolerance": 0,
        "missed": 0,
        "open": 0,
    }
    assert doc["audit"] == {"position": 7, "hash": "ab" * 32}


def test_logbook_has_a_row_per_occurrence_and_defect_event() -> None:
    lines = logbook_csv(_facts()).splitlines()
    assert lines[0].startswith("date,kind,system")
    assert len(lines) == 1 + 1 + 2 * len(CLASSES) * len(STATES)
    assert sorted(lines[1:]) == lines[1:]


@given(
    st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)),
    st.integers(0, 200),
    st.integers(0, 200),
)
def test_window_edges(due: date, before: int, after: int) -> None:
    start, end = due - timedelta(days=before), due + timedelta(days=after)
    judge = {"due_on": due, "window_start": start, "window_end": end, "as_of": end + timedelta(1)}
    assert classify(done_on=start, **judge) == "on_time"
    assert classify(done_on=due, **judge) == "on_time"
    assert classify(done_on=end, **judge) == ("on_time" if end == due else "late")
    assert classify(done_on=end + timedelta(days=1), **judge) == "out_of_tolerance"
    assert classify(done_on=start - timedelta(days=1), **judge) == "out_of_tolerance"
    assert classify(done_on=None, **judge) == "missed"
    assert classify(done_on=None, **{**judge, "as_of": end}) == "open"
    # Done after the day the report judges: not done yet on that day.
    assert classify(done_on=end, **{**judge, "as_of": due - timedelta(days=1)}) in {
        "open",
        "missed",
    }
