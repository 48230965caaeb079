"""The yearly condition report as PDF (ReportLab), byte-identical for one document.

Reproducibility: ``invariant=1`` fixes the document id and timestamps ReportLab would
otherwise take from the clock; the creation date written is the report's own
``generated_at``; the fonts are the standard Helvetica and Courier, which PDF viewers
carry and ReportLab never embeds or subsets. Every page carries the organisation's
name and the building's address.
"""

from __future__ import annotations

import io
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors  # type: ignore[import-untyped]
from reportlab.lib.pagesizes import A4  # type: ignore[import-untyped]
from reportlab.lib.styles import (  # type: ignore[import-untyped]
    ParagraphStyle,
    getSampleStyleSheet,
)
from reportlab.lib.units import mm  # type: ignore[import-untyped]
from reportlab.pdfgen.canvas import Canvas  # type: ignore[import-untyped]
from reportlab.platypus import (  # type: ignore[import-untyped]
    Flowable,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from src.app.reports.layout import SERVICE_STATUS_LABELS

_STYLES = getSampleStyleSheet()
_BODY = ParagraphStyle("body", parent=_STYLES["BodyText"], fontName="Helvetica", fontSize=9)
_SMALL = ParagraphStyle("small", parent=_BODY, fontSize=7.5, leading=9)
_MONO = ParagraphStyle("mono", parent=_SMALL, fontName="Courier")
_H1 = ParagraphStyle("h1", parent=_STYLES["Title"], fontName="Helvetica-Bold", fontSize=16)
_H2 = ParagraphStyle("h2", parent=_STYLES["Heading2"], fontName="Helvetica-Bold", fontSize=12)
_H3 = ParagraphStyle("h3", parent=_STYLES["Heading3"], fontName="Helvetica-Bold", fontSize=10)
_MARGIN = 18 * mm
_GRID = TableStyle(
    [
        ("FONT", (0, 0), (-1, -1), "Helvetica", 8),
        ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 8),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#E8E8E8")),
        ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]
)
STATUS_WORDS = {
    "operational": "Operational",
    "impaired": "Impaired (open non-critical defect)",
    "inoperative": "INOPERATIVE (open critical defect)",
}


def _p(text: object, style: ParagraphStyle = _BODY) -> Paragraph:
    return Paragraph(escape(str(text)), style)


def _table(header: list[str], rows: list[list[Any]], widths: list[float]) -> Flowable:
    if not rows:
        return _p("None.")
    data = [header, *[[_p(cell, _SMALL) for cell in row] for row in rows]]
    table = Table(data, colWidths=widths, repeatRows=1)
    table.setStyle(_GRID)
    return table


def _services(system: dict[str, Any]) -> list[Flowable]:
    out: list[Flowable] = []
    for status in ("late", "out_of_tolerance", "missed"):
        items = system["services"][status]
        if not items:
            continue
        rows = [
            [
                s["routine"],
                s["due_on"],
                f"{s['window']['start']} to {s['window']['end']}",
                s["done_on"] or "not done",
                s["reference"],
            ]
            for s in items
        ]
        out.append(
            KeepTogether(
                [
                    _p(f"{system['label']}: {SERVICE_STATUS_LABELS[status].lower()}", _H3),
                    _table(
                        ["Routine", "Due", "Tolerance window", "Done", "Reference"],
                        rows,
                        [25 * mm, 22 * mm, 45 * mm, 22 * mm, 60 * mm],
                    ),
                ]
            )
        )
    return out


def _defects(title: str, items: list[dict[str, Any]]) -> list[Flowable]:
    rows = [
        [d["id"][:8], d["system_label"], d["asset"], d["status"], d["raised_on"], d["description"]]
        for d in items
    ]
    return [
        KeepTogether(
            [
                _p(title, _H3),
                _table(
                    ["Defect", "System", "Asset", "Status", "Raised", "Description"],
                    rows,
                    [19 * mm, 32 * mm, 25 * mm, 22 * mm, 20 * mm, 56 * mm],
                ),
            ]
        )
    ]


def _story(doc: dict[str, Any]) -> list[Flowable]:
    report, building = doc["report"], doc["building"]
    story: list[Flowable] = [
        _p("Yearly condition report", _H1),
        _p(f"Routine service of fire protection systems ({report['standard']})", _BODY),
        Spacer(1, 4 * mm),
    ]
    ident = Table(
        [
            [_p("Organisation"), _p(doc["organisation"]["name"])],
            [_p("Building"), _p(building["name"])],
            [_p("Address"), _p(building["address"])],
            [_p("Period"), _p(f"{report['period']['start']} to {report['period']['end']}")],
            [_p("Report"), _p(report["id"], _MONO)],
            [_p("Generated"), _p(report["generated_at"])],
        ],
        colWidths=[35 * mm, 139 * mm],
    )
    ident.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.25, colors.grey)]))
    story += [ident, Spacer(1, 4 * mm), _p("1. Routine service by system", _H2)]
    summary = [
        [
            s["label"],
            s["assets"],
            s["counts"]["on_time"],
            s["counts"]["late"],
            s["counts"]["out_of_tolerance"],
            s["counts"]["missed"],
            s["counts"]["open"],
        ]
        for s in doc["systems"]
    ]
    story.append(
        _table(
            ["System", "Assets", "On time", "Late", "Out of tol.", "Missed", "Open"],
            summary,
            [64 * mm, 16 * mm, 18 * mm, 18 * mm, 20 * mm, 18 * mm, 20 * mm],
        )
    )
    for system in doc["systems"]:
        story += _services(system)
    story.append(
        KeepTogether(
            [
                Spacer(1, 3 * mm),
                _p("2. Operational status", _H2),
                _table(
                    ["System", "Status at generation"],
                    [[s["label"], STATUS_WORDS[s["operational_status"]]] for s in doc["systems"]],
                    [84 * mm, 90 * mm],
                ),
            ]
        )
    )
    defects = doc["defects"]
    story += [Spacer(1, 3 * mm), _p("3. Defects and non-conformances", _H2)]
    story += _defects("Critical defects (all, whatever their status)", defects["critical"])
    story += _defects("Non-critical defects (open)", defects["non_critical_open"])
    story += _defects("Non-conformances (open)", defects["non_conformances_open"])
    statement = doc["statement"]
    accords = "do" if statement["accords_with_design"] else "do NOT"
    story.append(
        KeepTogether(
            [
                Spacer(1, 3 * mm),
                _p("4. Statement", _H2),
                _p(
                    f"The fire protection systems of this building {accords} generally accord "
                    "with their approved design."
                ),
                _p(statement["text"]),
                _p(
                    f"Responsible person: {statement['responsible_person']}, licence "
                    f"{statement['licence_number']}"
                ),
                Spacer(1, 10 * mm),
                _p("Signature: ____________________________    Date: ______________"),
            ]
        )
    )
    audit = doc["audit"]
    story += [
        Spacer(1, 3 * mm),
        _p("5. Audit record", _H2),
        _p(
            "This report was built from the organisation's audit trail at chain position "
            f"{audit['position']}, whose hash is:"
        ),
        _p(audit["hash"], _MONO),
    ]
    return story


def render_pdf(doc: dict[str, Any]) -> bytes:
    """The PDF of a report document built by ``layout.build_report``."""
    organisation = doc["organisation"]["name"]
    address = f"{doc['building']['name']}, {doc['building']['address']}"
    generated = doc["report"]["generated_at"]  # RFC 3339, UTC
    pdf_date = "D:" + generated[:19].replace("-", "").replace("T", "").replace(":", "") + "Z"

    def decorate(canvas: Canvas, template: SimpleDocTemplate) -> None:
        canvas.saveState()
        canvas.setDateFormatter(lambda *_args: pdf_date)
        width, height = A4
        canvas.setFont("Helvetica-Bold", 8)
        canvas.drawString(_MARGIN, height - 11 * mm, organisation[:120])
        canvas.setFont("Helvetica", 8)
        canvas.drawString(_MARGIN, height - 15 * mm, address[:140])
        canvas.line(_MARGIN, height - 16.5 * mm, width - _MARGIN, height - 16.5 * mm)
        canvas.setFont("Helvetica", 7)
        canvas.drawString(_MARGIN, 10 * mm, f"Yearly condition report {doc['report']['id']}")
        canvas.drawRightString(width - _MARGIN, 10 * mm, f"Page {template.page}")
        canvas.restoreState()

    buffer = io.BytesIO()
    template = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=_MARGIN,
        rightMargin=_MARGIN,
        topMargin=22 * mm,
        bottomMargin=18 * mm,
        title=f"Yearly condition report - {doc['building']['name']}",
        author=organisation,
        subject=f"{doc['report']['period']['start']} to {doc['report']['period']['end']}",
        creator="FireMode",
        invariant=1,
    )
    template.build(_story(doc), onFirstPage=decorate, onLaterPages=decorate)
    return buffer.getvalue()
