"""The logbook export: one CSV row per routine occurrence and per defect event. Pure."""

from __future__ import annotations

import csv
import io

from src.app.reports.facts import DefectEvent, ReportFacts
from src.app.reports.layout import SERVICE_STATUS_LABELS, system_label

COLUMNS = (
    "date",
    "kind",
    "system",
    "routine_or_class",
    "status",
    "due_on",
    "window_start",
    "window_end",
    "done_on",
    "assets",
    "reference",
    "description",
)


def logbook_csv(facts: ReportFacts) -> str:
    """Rows in date order: a service row dated by when it was done (or due, if not done),
    a defect row per state change (the first being when it was raised)."""
    rows: list[tuple[str, ...]] = []
    for o in facts.occurrences:
        rows.append(
            (
                (o.done_on or o.due_on).isoformat(),
                "service",
                system_label(o.system),
                o.routine,
                SERVICE_STATUS_LABELS[o.status],
                o.due_on.isoformat(),
                o.window_start.isoformat(),
                o.window_end.isoformat(),
                o.done_on.isoformat() if o.done_on else "",
                str(o.assets),
                o.reference,
                "",
            )
        )
    for d in facts.defects:
        for event in d.events or (DefectEvent(d.raised_on, d.status),):
            rows.append(
                (
                    event.on.isoformat(),
                    "defect",
                    system_label(d.system),
                    d.defect_class,
                    event.status,
                    "",
                    "",
                    "",
                    "",
                    "",
                    f"{d.id} {d.asset}",
                    d.description,
                )
            )
    rows.sort()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    return out.getvalue()
