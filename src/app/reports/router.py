"""Yearly condition reports and the logbook export of a building."""

from __future__ import annotations

import hashlib
import uuid

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from src.app.core.database import get_database, get_db
from src.app.core.errors import ApiError, FieldError, error_responses
from src.app.core.idempotency import (
    IDEMPOTENCY_ERROR_STATUSES,
    IdempotentRequest,
    idempotency_optional,
)
from src.app.core.responses import JSON_MEDIA_TYPE
from src.app.core.schemas import CalendarDate
from src.app.core.tenancy import Principal, get_owned
from src.app.identity.dependencies import require_admin, require_reader
from src.app.reports.gather import Period
from src.app.reports.models import ConditionReport
from src.app.reports.schemas import MAX_PERIOD_DAYS, YearlyConditionCreate
from src.app.reports.service import (
    build_yearly_condition,
    building_logbook,
    render,
    save_report,
)

router = APIRouter(tags=["reports"])

PDF_MEDIA_TYPE = "application/pdf"
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
CREATE_DESCRIPTION = """
Builds the building's yearly condition report for the period (AS 1851-2012 Appendix E):
per system, the routine services due in the period (done on time, late but within
tolerance, out of tolerance, missed); the systems' operational status; every critical
defect whatever its status, the open non-critical defects and non-conformances; the
statement entered here; and the position and hash of the organisation's audit chain it
was built from.

The report is immutable and reproducible: `GET` on its `Location` gives the same JSON
(or, with `Accept: application/pdf`, the same PDF) byte for byte, every time. Its id is
derived from what it was built from, so the same request while nothing changed answers
200 with the existing report instead of 201. Admins only; honours `Idempotency-Key`.
"""


def _location(report: ConditionReport) -> str:
    return f"/v1/buildings/{report.building_id}/reports/yearly-condition/{report.id}"


@router.post(
    "/buildings/{building_id}/reports/yearly-condition",
    status_code=201,
    summary="Create the yearly condition report of a building (admin)",
    description=CREATE_DESCRIPTION,
    responses={
        200: {"description": "The identical report existed already; it is returned"},
        201: {"description": "The report (JSON), with its `Location`"},
        **error_responses(*IDEMPOTENCY_ERROR_STATUSES),
    },
)
async def create_yearly_condition(
    building_id: uuid.UUID,
    body: YearlyConditionCreate,
    request: Request,
    principal: Principal = Depends(require_admin),
    db: AsyncSession = Depends(get_db),
    idempotency: IdempotentRequest = Depends(idempotency_optional),
) -> Response:
    # Built before the write transaction: it seals the chain and reads its own snapshot
    # on other connections (on SQLite the write lock would make them wait for us).
    if db.in_transaction():
        await db.commit()
    built = await build_yearly_condition(get_database(request), principal, building_id, body)

    async def work() -> Response:
        report, created = await save_report(db, built)
        return Response(
            content=render(report, pdf=False).json,
            status_code=201 if created else 200,
            headers={"Location": _location(report)},
            media_type=JSON_MEDIA_TYPE,
        )

    return await idempotency.run(principal, work)


def _wants_pdf(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return any(part.split(";")[0].strip() == PDF_MEDIA_TYPE for part in accept.split(","))


@router.get(
    "/buildings/{building_id}/reports/yearly-condition/{report_id}",
    summary="A yearly condition report, as JSON or PDF",
    description=(
        "JSON by default; PDF with `Accept: application/pdf`. Both are rendered from the "
        "facts stored with the report and are byte-identical on every request (`ETag` "
        "is their SHA-256). Every page of the PDF carries the organisation's name and "
        "the building's address."
    ),
    responses={
        200: {
            "description": "The report",
            "content": {JSON_MEDIA_TYPE: {}, PDF_MEDIA_TYPE: {}},
        }
    },
)
async def get_yearly_condition(
    building_id: uuid.UUID,
    report_id: uuid.UUID,
    request: Request,
    principal: Principal = Depends(require_reader),
    db: AsyncSession = Depends(get_db),
) -> Response:
    report = await get_owned(db, ConditionReport, report_id, principal, what="Report")
    if report.building_id != building_id:
        raise ApiError(404, f"Report {report_id} does not exist")
    pdf = _wants_pdf(request)
    rendered = render(report, pdf=pdf)
    content = rendered.pdf if rendered.pdf is not None else rendered.json
    headers = {"ETag": f'"{hashlib.sha256(content).hexdigest()}"'}
    if pdf:
        headers["Content-Disposition"] = f'inline; filename="yearly-condition-{report.id}.pdf"'
    return Response(
        content=content,
        headers=headers,
        media_type=PDF_MEDIA_TYPE if pdf else JSON_MEDIA_TYPE,
    )


@router.get(
    "/buildings/{building_id}/logbook",
    summary="The building's logbook for a period, as CSV",
    description=(
        "One row per routine service due in the period and per defect event, in date "
        "order, for contractors who keep a paper logbook. Columns: "
        "`date, kind, system, routine_or_class, status, due_on, window_start, "
        "window_end, done_on, assets, reference, description`."
    ),
    responses={200: {"content": {CSV_MEDIA_TYPE: {}}, "description": "The logbook"}},
)
async def get_logbook(
    building_id: uuid.UUID,
    since: CalendarDate = Query(alias="from", description="First day of the period."),
    until: CalendarDate = Query(alias="to", description="Last day of the period (inclusive)."),
    principal: Principal = Depends(require_reader),
    db: AsyncSession = Depends(get_db),
) -> Response:
    if until < since or (until - since).days > MAX_PERIOD_DAYS:
        detail = f"to must not be before from, and the period at most {MAX_PERIOD_DAYS} days"
        raise ApiError(422, detail, errors=[FieldError(parameter="to", detail=detail)])
    text = await building_logbook(db, principal, building_id, Period(since, until))
    return Response(
        content=text.encode("utf-8"),
        media_type=CSV_MEDIA_TYPE,
        headers={
            "Content-Disposition": (
                f'attachment; filename="logbook-{building_id}-{since}-{until}.csv"'
            )
        },
    )
