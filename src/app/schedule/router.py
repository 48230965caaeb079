"""The service schedule: what is due where, what is late, and the admin's baselines.

Every route is scoped to the caller's organisation (another organisation's building or
asset is a 404). Viewers and technicians read; admins set baselines.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta

from fastapi import APIRouter, Depends, Header, Query, Request
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response, StreamingResponse

from src.app.buildings.models import Asset, AssetType, Building
from src.app.core.database import get_db
from src.app.core.errors import ApiError, FieldError, error_responses
from src.app.core.pagination import Page, PageParams, page_params, paginate
from src.app.core.schemas import CalendarDate
from src.app.core.settings import Settings
from src.app.core.tenancy import Principal, get_owned
from src.app.core.transactions import begin_write
from src.app.identity.dependencies import require_admin, require_reader
from src.app.schedule import bundle, service
from src.app.schedule.models import AssetBaseline, ScheduleOccurrence, ScheduleRoutine
from src.app.schedule.queries import (
    BUILDING_SCHEDULE_ENDPOINT,
    DUE_ENDPOINT,
    SOONEST_FIRST,
    OccurrenceFilters,
    StatusFilter,
    list_occurrences,
)
from src.app.schedule.schemas import BaselineIn, OccurrenceOut, RoutineList, RoutineOut

router = APIRouter(tags=["schedule"])

LIST_DESCRIPTION = """
Occurrences of routines (one per scheduled date, `baseline + n x period`), soonest first
(`due_on`, then `id`). `from` and `to` bound `due_on` (inclusive). `status` is evaluated
on the day of the request (in `FIREMODE_SCHEDULE_TIMEZONE`): `due` (open, scheduled today
or later), `overdue` (open, past its date, still in tolerance), `out_of_tolerance` (missed,
or done outside its window), `done`.
"""
FROM_QUERY = Query(None, alias="from", description="Only occurrences due on or after this day.")
TO_QUERY = Query(
    None,
    alias="to",
    description="Only occurrences due on or before this day (default: one year from today).",
)
STATUS_QUERY = Query(None, description="Only occurrences in this status today.")


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _range(date_from: date | None, date_to: date | None, settings: Settings) -> tuple[date, date]:
    today = service.local_today(settings)
    date_to = date_to or today + timedelta(days=365)
    if date_from is not None and date_from > date_to:
        detail = "from must not be after to"
        raise ApiError(422, detail, errors=[FieldError(parameter="from", detail=detail)])
    latest = today + timedelta(days=settings.schedule_horizon_days)
    if date_to > latest:
        detail = f"to must be at most {settings.schedule_horizon_days} days from today ({latest})"
        raise ApiError(422, detail, errors=[FieldError(parameter="to", detail=detail)])
    return today, date_to


async def _page(
    db: AsyncSession,
    principal: Principal,
    settings: Settings,
    params: PageParams,
    filters: OccurrenceFilters,
    *,
    today: date,
    until: date,
    endpoint: str,
) -> Page[OccurrenceOut]:
    if await service.ensure_materialised(
        db, organisation_id=principal.organisation_id, until=until, settings=settings
    ):
        await db.commit()
    rows, next_cursor = await paginate(
        db,
        list_occurrences(principal.organisation_id, filters, today),
        ScheduleOccurrence,
        params,
        endpoint=endpoint,
        filters=filters.binding(),
        organisation_id=principal.organisation_id,
        keyset=SOONEST_FIRST,
    )
    return Page[OccurrenceOut](
        data=[OccurrenceOut.of(row, today) for row in rows], next_cursor=next_cursor
    )


@router.get(
    "/schedule/due",
    response_model=Page[OccurrenceOut],
    summary="The organisation's due list: routine occurrences, soonest first",
    description=LIST_DESCRIPTION,
    responses=error_responses(400),
)
async def get_due(
    request: Request,
    date_from: CalendarDate | None = FROM_QUERY,
    date_to: CalendarDate | None = TO_QUERY,
    building_id: uuid.UUID | None = Query(None, description="Only this building's."),
    status: StatusFilter | None = STATUS_QUERY,
    params: PageParams = Depends(page_params),
    principal: Principal = Depends(require_reader),
    db: AsyncSession = Depends(get_db),
) -> Page[OccurrenceOut]:
    settings = _settings(request)
    today, until = _range(date_from, date_to, settings)
    if building_id is not None:
        await get_owned(db, Building, building_id, principal, what="Building")
    filters = OccurrenceFilters(date_from, until, building_id, status)
    return await _page(
        db, principal, settings, params, filters, today=today, until=until, endpoint=DUE_ENDPOINT
    )


@router.get(
    "/buildings/{building_id}/schedule",
    response_model=Page[OccurrenceOut],
    summary="A building's schedule: routine occurrences, soonest first",
    description=LIST_DESCRIPTION,
    responses=error_responses(400),
)
async def get_building_schedule(
    request: Request,
    building_id: uuid.UUID,
    date_from: CalendarDate | None = FROM_QUERY,
    date_to: CalendarDate | None = TO_QUERY,
    status: StatusFilter | None = STATUS_QUERY,
    params: PageParams = Depends(page_params),
    principal: Principal = Depends(require_reader),
    db: AsyncSession = Depends(get_db),
) -> Page[OccurrenceOut]:
    settings = _settings(request)
    today, until = _range(date_from, date_to, settings)
    await get_owned(db, Building, building_id, principal, what="Building")
    filters = OccurrenceFilters(date_from, until, building_id, status)
    return await _page(
        db,
        principal,
        settings,
        params,
        filters,
        today=today,
        until=until,
        endpoint=BUILDING_SCHEDULE_ENDPOINT,
    )


async def _routines(db: AsyncSession, asset_id: uuid.UUID) -> RoutineList:
    rows = (
        await db.execute(
            select(ScheduleRoutine)
            .where(ScheduleRoutine.asset_id == asset_id)
            .order_by(ScheduleRoutine.rule_code)
        )
    ).scalars()
    return RoutineList(data=[RoutineOut.of(r) for r in rows])


@router.get(
    "/assets/{asset_id}/routines",
    response_model=RoutineList,
    summary="The routines of an asset (from the rule catalogue) and their baselines",
)
async def get_routines(
    asset_id: uuid.UUID,
    principal: Principal = Depends(require_reader),
    db: AsyncSession = Depends(get_db),
) -> RoutineList:
    await get_owned(db, Asset, asset_id, principal, what="Asset")
    return await _routines(db, asset_id)


@router.put(
    "/assets/{asset_id}/baseline",
    response_model=RoutineList,
    summary="Set the baseline of every routine of an asset (admin)",
    description=(
        "Scheduled dates become `baseline + n x period` for each routine that has no "
        "baseline of its own. Null removes it (installed_on, else the first service, "
        "applies again). Answers the asset's routines."
    ),
)
async def put_asset_baseline(
    request: Request,
    asset_id: uuid.UUID,
    body: BaselineIn,
    principal: Principal = Depends(require_admin),
    db: AsyncSession = Depends(get_db),
) -> RoutineList:
    await begin_write(db)
    asset = await get_owned(db, Asset, asset_id, principal, what="Asset", for_update=True)
    await db.execute(delete(AssetBaseline).where(AssetBaseline.asset_id == asset.id))
    if body.baseline_on is not None:
        db.add(
            AssetBaseline(
                organisation_id=principal.organisation_id,
                asset_id=asset.id,
                baseline_on=body.baseline_on,
            )
        )
    await db.flush()
    await service.refresh_assets(
        db,
        organisation_id=principal.organisation_id,
        settings=_settings(request),
        asset_ids=[asset.id],
    )
    await db.commit()
    return await _routines(db, asset.id)


@router.put(
    "/assets/{asset_id}/routines/{rule_code}/baseline",
    response_model=RoutineOut,
    summary="Set the baseline of one routine of an asset (admin)",
    description=(
        "Wins over the asset's baseline for this routine. Null removes it. A rule that "
        "does not apply to the asset is a 404."
    ),
)
async def put_routine_baseline(
    request: Request,
    asset_id: uuid.UUID,
    rule_code: str,
    body: BaselineIn,
    principal: Principal = Depends(require_admin),
    db: AsyncSession = Depends(get_db),
) -> RoutineOut:
    await begin_write(db)
    asset = await get_owned(db, Asset, asset_id, principal, what="Asset", for_update=True)
    routine = (
        await db.execute(
            select(ScheduleRoutine).where(
                ScheduleRoutine.asset_id == asset.id, ScheduleRoutine.rule_code == rule_code
            )
        )
    ).scalar_one_or_none()
    if routine is None:
        raise ApiError(404, f"Asset {asset_id} has no routine {rule_code!r}")
    routine.baseline_on = body.baseline_on
    await db.flush()
    await service.refresh_assets(
        db,
        organisation_id=principal.organisation_id,
        settings=_settings(request),
        asset_ids=[asset.id],
    )
    await db.commit()
    return RoutineOut.of(routine)


BUNDLE_DESCRIPTION = """
Everything a technician needs for a building before losing signal: the building, its
assets, the rules (at the versions that apply) for their types, the routines due within
31 days and those overdue, open defects, the open sessions with their results documents
and `results_version` (delta sync of results continues from there), a `server_timestamp`
and a `bundle_version`.

* The body is JSON, always sent `Content-Encoding: gzip`.
* `ETag` (weak) and `If-None-Match`: an unchanged bundle answers **304** without being
  built. The ETag changes at midnight too (due / overdue move with the date).
* `since=<bundle_version>` of an earlier bundle returns only what changed after it
  (`asset_ids` still lists every asset, so removed ones can be dropped; sessions completed
  since are included so the device can close them).
* Over `FIREMODE_MAX_BUNDLE_BYTES` (50 MB) compressed: **413**, ask for a subset with
  `floor` (the asset attribute `floor`) or `asset_type`.
"""


@router.get(
    "/buildings/{building_id}/offline-bundle",
    summary="A building's offline bundle (gzip JSON, ETag, 304, since=, 413 over the cap)",
    description=BUNDLE_DESCRIPTION,
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The bundle, gzip-encoded JSON",
            "content": {"application/json": {"schema": {"type": "object"}}},
            "headers": {
                "ETag": {
                    "description": "Weak validator of this bundle",
                    "schema": {"type": "string"},
                },
                "Content-Encoding": {"description": "Always gzip", "schema": {"type": "string"}},
            },
        },
        304: {"description": "Not modified since the ETag sent in If-None-Match"},
        **error_responses(413),
    },
)
async def get_offline_bundle(
    request: Request,
    building_id: uuid.UUID,
    since: int | None = Query(
        None, ge=0, description="The `bundle_version` of an earlier bundle: only what changed."
    ),
    floor: str | None = Query(
        None,
        min_length=1,
        max_length=100,
        description="Only assets whose attribute `floor` is this.",
    ),
    asset_type: AssetType | None = Query(None, description="Only assets of this type."),
    if_none_match: str | None = Header(
        None, alias="If-None-Match", description="The ETag of the bundle the device holds."
    ),
    principal: Principal = Depends(require_reader),
    db: AsyncSession = Depends(get_db),
) -> Response:
    settings = _settings(request)
    await get_owned(db, Building, building_id, principal, what="Building")
    wanted = bundle.BundleRequest(
        organisation_id=principal.organisation_id,
        building_id=building_id,
        today=service.local_today(settings),
        since=since,
        floor=floor,
        asset_type=asset_type.value if asset_type else None,
    )
    tag, version = await bundle.etag(db, wanted)
    headers = {"ETag": tag, "Cache-Control": "private, no-cache"}
    if if_none_match is not None and (
        if_none_match.strip() == "*" or tag in {t.strip() for t in if_none_match.split(",")}
    ):
        return Response(status_code=304, headers=headers)
    file, size = await bundle.build(db, wanted, version=version, cap=settings.max_bundle_bytes)
    return StreamingResponse(
        bundle.stream(file),
        media_type="application/json",
        headers={**headers, "Content-Encoding": "gzip", "Content-Length": str(size)},
    )
