"""The yearly condition report through HTTP: a seeded year, exact content, same bytes."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pypdf import PdfReader

from src.app.buildings.models import Asset, Building
from src.app.defects.models import Defect, DefectEvent
from src.app.schedule.models import ScheduleOccurrence, ScheduleRoutine

BUILDING_ADDRESS = "1 Harbour St, Sydney NSW 2000"
STATEMENT = {
    "accords_with_design": True,
    "statement": "The systems were found generally in accordance with the approved design.",
    "responsible_person": "Jane Citizen",
    "licence_number": "FPAS-12345",
}
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
OPEN_STATES = ["open", "acknowledged", "quoted", "repair_scheduled", "repaired"]
# (due day, frequency, tolerance window, day completed or None): the schedule's
# occurrences for every asset of the building.
YEAR = [
    (date(2024, 12, 16), "monthly", (date(2024, 12, 9), date(2024, 12, 23)), date(2024, 12, 16)),
    (date(2025, 1, 15), "monthly", (date(2025, 1, 8), date(2025, 1, 22)), date(2025, 1, 14)),
    (date(2025, 2, 14), "monthly", (date(2025, 2, 7), date(2025, 2, 21)), date(2025, 2, 14)),
    (date(2025, 3, 14), "monthly", (date(2025, 3, 7), date(2025, 3, 21)), date(2025, 3, 18)),
    (date(2025, 4, 15), "monthly", (date(2025, 4, 8), date(2025, 4, 22)), date(2025, 5, 2)),
    (date(2025, 5, 15), "monthly", (date(2025, 5, 8), date(2025, 5, 22)), None),
    (date(2025, 6, 2), "yearly", (date(2025, 4, 2), date(2025, 8, 2)), date(2025, 6, 20)),
    (date(2025, 12, 29), "monthly", (date(2025, 12, 22), date(2026, 1, 5)), None),
]
# In order: before the period (left out); on time, early in its window; on time; late
# within tolerance; out of tolerance; missed; late (yearly window); window still open at
# the end of the period.


async def _defect(
    db: Any,
    tenant: Any,
    building_id: uuid.UUID,
    asset_id: uuid.UUID,
    severity: str,
    status: str,
    raised: datetime,
) -> None:
    """A defect straight into its state, with its history (rows only: no outbox event
    and no response deadline, so no worker of another test ever picks it up)."""
    defect = Defect(
        id=uuid.uuid4(),
        organisation_id=tenant.organisation_id,
        building_id=building_id,
        asset_id=asset_id,
        severity=severity,
        status=status,
        remark=f"{severity} {status} {raised.date()}",
        source="manual",
        raised_by=tenant.technician.id,
        created_at=raised,
        updated_at=raised,
    )
    db.add(defect)
    await db.flush()
    moves = [(None, "open", raised)]
    if status != "open":
        moves.append(("open", status, raised + timedelta(days=10)))
    for from_status, to_status, at in moves:
        db.add(
            DefectEvent(
                defect_id=defect.id,
                organisation_id=tenant.organisation_id,
                from_status=from_status,
                to_status=to_status,
                note="",
                changes={},
                actor_id=tenant.admin.id,
                created_at=at,
            )
        )


async def _seed_defects(db: Any, tenant: Any, building_id: uuid.UUID, asset_id: uuid.UUID) -> None:
    """Every class in every state, raised in the period; and the edge cases around it."""
    day = 0
    for severity in ("critical", "non_critical", "non_conformance"):
        for status in STATES:
            day += 1
            raised = datetime(2025, 3, 1, 9, tzinfo=UTC) + timedelta(days=day)
            await _defect(db, tenant, building_id, asset_id, severity, status, raised)
    before = datetime(2024, 6, 1, 9, tzinfo=UTC)
    await _defect(db, tenant, building_id, asset_id, "critical", "closed", before)  # out
    await _defect(db, tenant, building_id, asset_id, "non_critical", "quoted", before)  # in
    await _defect(db, tenant, building_id, asset_id, "recommendation", "open", before)  # out
    after = datetime(2026, 1, 2, 9, tzinfo=UTC)
    await _defect(db, tenant, building_id, asset_id, "critical", "open", after)  # out


async def _seed(app: FastAPI, tenant: Any) -> uuid.UUID:
    building_id = uuid.uuid4()
    async with app.state.database.sessionmaker() as db:
        db.add(
            Building(
                id=building_id,
                organisation_id=tenant.organisation_id,
                name="Harbour Tower",
                address=BUILDING_ADDRESS,
                building_type="office",
            )
        )
        await db.flush()
        assets = [
            Asset(
                organisation_id=tenant.organisation_id,
                building_id=building_id,
                asset_type=asset_type,
                location=f"L{index}",
                barcode=f"{building_id.hex[:6]}-{index}",
            )
            for index, asset_type in enumerate(["fire_extinguisher"] * 3 + ["emergency_light"] * 2)
        ]
        db.add_all(assets)
        await db.flush()
        await _seed_defects(db, tenant, building_id, assets[0].id)
        session_id = uuid.uuid4()
        for asset in assets:
            routines = {
                frequency: ScheduleRoutine(
                    organisation_id=tenant.organisation_id,
                    asset_id=asset.id,
                    rule_code=f"TEST-{frequency}",
                    frequency=frequency,
                )
                for frequency in ("monthly", "yearly")
            }
            db.add_all(routines.values())
            await db.flush()
            for seq, (due, frequency, (start, end), done) in enumerate(YEAR, start=1):
                db.add(
                    ScheduleOccurrence(
                        organisation_id=tenant.organisation_id,
                        building_id=building_id,
                        asset_id=asset.id,
                        routine_id=routines[frequency].id,
                        rule_code=f"TEST-{frequency}",
                        frequency=frequency,
                        seq=seq,
                        due_on=due,
                        window_start=start,
                        window_end=end,
                        done_on=done,
                        done_session_id=session_id if done else None,
                    )
                )
        await db.commit()
    return building_id


async def test_report_lists_the_year_and_regenerates_identically(
    client: httpx.AsyncClient, app: FastAPI, make_tenant: Any
) -> None:
    tenant = await make_tenant("Acme Fire Services Pty Ltd")
    building_id = await _seed(app, tenant)
    url = f"/v1/buildings/{building_id}/reports/yearly-condition"
    body = {"period_start": "2025-01-01", "period_end": "2025-12-31", **STATEMENT}

    assert (await client.post(url, json=body, headers=tenant.technician.headers)).status_code == 403
    created = await client.post(url, json=body, headers=tenant.admin.headers)
    assert created.status_code == 201, created.text
    location = created.headers["Location"]
    assert location.startswith(f"/v1/buildings/{building_id}/reports/yearly-condition/")

    report = await client.get(location, headers=tenant.viewer.headers)
    assert report.status_code == 200
    assert report.headers["content-type"] == "application/json"
    assert report.content == created.content
    doc = report.json()
    assert doc["organisation"]["name"] == "Acme Fire Services Pty Ltd"
    assert doc["building"]["address"] == BUILDING_ADDRESS
    assert doc["statement"] == {
        "accords_with_design": True,
        "text": STATEMENT["statement"],
        "responsible_person": "Jane Citizen",
        "licence_number": "FPAS-12345",
    }
    head = (await client.get("/v1/audit/head", headers=tenant.viewer.headers)).json()
    assert doc["audit"] == {"position": head["position"], "hash": head["hash"]}
    assert [(s["system"], s["assets"]) for s in doc["systems"]] == [
        ("emergency_light", 2),
        ("fire_extinguisher", 3),
    ]
    for system in doc["systems"]:
        assert system["counts"] == {
            "on_time": 2,
            "late": 2,
            "out_of_tolerance": 1,
            "missed": 1,
            "open": 1,
        }
        services = system["services"]
        assert [(s["due_on"], s["done_on"]) for s in services["late"]] == [
            ("2025-03-14", "2025-03-18"),
            ("2025-06-02", "2025-06-20"),
        ]
        assert services["late"][0]["window"] == {"start": "2025-03-07", "end": "2025-03-21"}
        assert [s["due_on"] for s in services["on_time"]] == ["2025-01-15", "2025-02-14"]
        assert [(s["due_on"], s["done_on"]) for s in services["out_of_tolerance"]] == [
            ("2025-04-15", "2025-05-02")
        ]
        assert [(s["due_on"], s["done_on"]) for s in services["missed"]] == [("2025-05-15", None)]
        assert [s["due_on"] for s in services["open"]] == ["2025-12-29"]
    assert {s["system"]: s["operational_status"] for s in doc["systems"]} == {
        "emergency_light": "operational",
        "fire_extinguisher": "inoperative",  # an open critical defect on one of them
    }
    defects = doc["defects"]
    assert [d["status"] for d in defects["critical"]] == list(STATES)
    assert [(d["status"], d["raised_on"]) for d in defects["non_critical_open"]] == [
        ("quoted", "2024-06-01"),
        *[
            (status, d["raised_on"])
            for status, d in zip(OPEN_STATES, defects["non_critical_open"][1:], strict=True)
        ],
    ]
    assert [d["status"] for d in defects["non_conformances_open"]] == OPEN_STATES
    assert all(d["system"] == "fire_extinguisher" for d in defects["critical"])

    # Same bytes on every rendering, JSON and PDF; the same request while nothing changed
    # is the same report.
    pdf_headers = {**tenant.viewer.headers, "Accept": "application/pdf"}
    pdf = await client.get(location, headers=pdf_headers)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert (await client.get(location, headers=pdf_headers)).content == pdf.content
    again = await client.post(url, json=body, headers=tenant.admin.headers)
    assert (again.status_code, again.headers["Location"]) == (200, location)
    assert again.content == report.content
    assert (await client.get(location, headers=pdf_headers)).content == pdf.content

    reader = PdfReader(io.BytesIO(pdf.content))
    pages = [page.extract_text() for page in reader.pages]
    for text in pages:
        assert "Acme Fire Services Pty Ltd" in text
        assert BUILDING_ADDRESS in text
    whole = "\n".join(pages)
    for section in (
        "Yearly condition report",
        "1. Routine service by system",
        "Portable fire extinguishers: done late, within tolerance",
        "Emergency lighting: missed",
        "2. Operational status",
        "3. Defects and non-conformances",
        "Critical defects (all, whatever their status)",
        "Non-critical defects (open)",
        "Non-conformances (open)",
        "4. Statement",
        "Jane Citizen, licence FPAS-12345",
        "5. Audit record",
        head["hash"],
    ):
        assert section in whole, section

    # A change to the record makes the next report another one.
    changed = await client.patch(
        f"/v1/buildings/{building_id}",
        json={"name": "Harbour Tower East"},
        headers=tenant.admin.headers,
    )
    assert changed.status_code == 200
    newer = await client.post(url, json=body, headers=tenant.admin.headers)
    assert newer.status_code == 201 and newer.headers["Location"] != location
    assert (await client.get(location, headers=pdf_headers)).content == pdf.content

    other = await make_tenant()
    assert (await client.get(location, headers=other.viewer.headers)).status_code == 404


async def test_logbook_csv(client: httpx.AsyncClient, app: FastAPI, make_tenant: Any) -> None:
    tenant = await make_tenant()
    building_id = await _seed(app, tenant)
    response = await client.get(
        f"/v1/buildings/{building_id}/logbook",
        params={"from": "2025-01-01", "to": "2025-12-31"},
        headers=tenant.viewer.headers,
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    lines = response.text.splitlines()
    kinds = [line.split(",")[1] for line in lines[1:]]
    # 7 routine occurrences in the period, for each of the 2 systems.
    assert kinds.count("service") == 7 * 2
    # The 25 defects reported each have their "raised" event; the 22 not left "open" one
    # more (7 states x 3 classes in the period, and the quoted one from 2024).
    assert kinds.count("defect") == 25 + 22
    assert lines[0].startswith("date,kind,system")
    assert lines[1:] == sorted(lines[1:])


@pytest.mark.parametrize(
    "change",
    [
        {"period_end": "2024-12-31"},
        {"period_end": "2028-01-01"},
        {"responsible_person": ""},
        {"licence_number": None},
    ],
)
async def test_invalid_requests(
    client: httpx.AsyncClient, make_tenant: Any, change: dict[str, Any]
) -> None:
    tenant = await make_tenant()
    body = {"period_start": "2025-01-01", "period_end": "2025-12-31", **STATEMENT, **change}
    response = await client.post(
        f"/v1/buildings/{uuid.uuid4()}/reports/yearly-condition",
        json=body,
        headers=tenant.admin.headers,
    )
    assert response.status_code == 422
