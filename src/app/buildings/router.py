"""Buildings and their equipment register.

Admins manage buildings; admins and technicians keep the equipment register (technicians
tag and replace items on site); viewers read. Everything is scoped to the caller's
organisation: another organisation's building or asset is a 404.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.buildings import hooks
from src.app.buildings.models import Asset, Building
from src.app.buildings.queries import (
    ASSETS_ENDPOINT,
    BUILDINGS_ENDPOINT,
    BuildingFilters,
    list_assets,
    list_buildings,
)
from src.app.buildings.schemas import (
    AssetCreate,
    AssetOut,
    AssetUpdate,
    BuildingCreate,
    BuildingOut,
    BuildingUpdate,
)
from src.app.core import audit
from src.app.core.database import get_db
from src.app.core.errors import ApiError, error_responses
from src.app.core.idempotency import (
    IDEMPOTENCY_ERROR_STATUSES,
    IdempotentRequest,
    idempotency_optional,
)
from src.app.core.pagination import Page, PageParams, page_params, paginate
from src.app.core.responses import json_response
from src.app.core.settings import Settings
from src.app.core.tenancy import Principal, get_owned, scoped
from src.app.core.transactions import begin_write
from src.app.identity.dependencies import require_admin, require_reader, require_writer

router = APIRouter(tags=["buildings"])


# Free-form JSON (building metadata, asset attributes) is recorded as "changed", never
# copied: the trail must not carry whatever a client put there.
_FREE_FORM = frozenset({"metadata", "attributes"})


def _changed_fields(
    row: object, changes: dict[str, object], *, renamed: dict[str, str] | None = None
) -> dict[str, object]:
    """The fields ``changes`` really changes on ``row``, with their new values."""
    renamed = renamed or {}
    changed: dict[str, object] = {}
    for name, value in changes.items():
        new = getattr(value, "value", value)  # enums as their value
        if getattr(row, renamed.get(name, name)) != new:
            changed[name] = "changed" if name in _FREE_FORM else new
    return changed


# --- buildings ---------------------------------------------------------------------------


@router.post(
    "/buildings",
    status_code=201,
    response_model=BuildingOut,
    summary="Create a building (admin)",
    description="Honours `Idempotency-Key`.",
    responses=error_responses(*IDEMPOTENCY_ERROR_STATUSES),
)
async def create_building(
    body: BuildingCreate,
    principal: Principal = Depends(require_admin),
    db: AsyncSession = Depends(get_db),
    idempotency: IdempotentRequest = Depends(idempotency_optional),
) -> Response:
    async def work() -> Response:
        building = Building(
            organisation_id=principal.organisation_id,
            name=body.name,
            address=body.address,
            building_type=body.building_type,
            metadata_=body.metadata,
            state=body.state.value if body.state else None,
        )
        db.add(building)
        await db.flush()
        await audit.record_by(
            db,
            principal,
            "building.created",
            "building",
            building.id,
            {
                "name": building.name,
                "address": building.address,
                "building_type": building.building_type,
            },
        )
        return json_response(
            BuildingOut.of(building),
            status_code=201,
            headers={"Location": f"/v1/buildings/{building.id}"},
        )

    return await idempotency.run(principal, work)


@router.get(
    "/buildings",
    response_model=Page[BuildingOut],
    summary="List buildings, newest first",
    responses=error_responses(400),
)
async def get_buildings(
    building_type: str | None = Query(
        None, max_length=64, description="Only buildings of exactly this type."
    ),
    q: str | None = Query(
        None,
        max_length=200,
        description="Case-insensitive search in the building's name (substring match).",
    ),
    params: PageParams = Depends(page_params),
    principal: Principal = Depends(require_reader),
    db: AsyncSession = Depends(get_db),
) -> Page[BuildingOut]:
    filters = BuildingFilters.normalised(building_type, q)
    rows, next_cursor = await paginate(
        db,
        list_buildings(principal, filters),
        Building,
        params,
        endpoint=BUILDINGS_ENDPOINT,
        filters=filters.binding(),
        organisation_id=principal.organisation_id,
    )
    return Page[BuildingOut](data=[BuildingOut.of(b) for b in rows], next_cursor=next_cursor)


@router.get("/buildings/{building_id}", response_model=BuildingOut, summary="Get a building")
async def get_building(
    building_id: uuid.UUID,
    principal: Principal = Depends(require_reader),
    db: AsyncSession = Depends(get_db),
) -> BuildingOut:
    return BuildingOut.of(await get_owned(db, Building, building_id, principal, what="Building"))


@router.patch(
    "/buildings/{building_id}",
    response_model=BuildingOut,
    summary="Update a building (admin); only the fields sent change",
)
async def update_building(
    building_id: uuid.UUID,
    body: BuildingUpdate,
    request: Request,
    principal: Principal = Depends(require_admin),
    db: AsyncSession = Depends(get_db),
) -> BuildingOut:
    await begin_write(db)
    building = await get_owned(
        db, Building, building_id, principal, what="Building", for_update=True
    )
    changes = body.model_dump(exclude_unset=True)
    changed = _changed_fields(building, changes, renamed={"metadata": "metadata_"})
    if "metadata" in changes:
        building.metadata_ = changes.pop("metadata")
    if "state" in changes:
        changes["state"] = changes["state"].value if changes["state"] else None
    state_changed = "state" in changes and changes["state"] != building.state
    for name, value in changes.items():
        setattr(building, name, value)
    if changed:
        await audit.record_by(
            db,
            principal,
            "building.updated",
            "building",
            building.id,
            {"changes": changed},
        )
    if state_changed:
        await db.flush()
        await hooks.run_building_state_hooks(db, building, request.app.state.settings)
    await db.commit()
    return BuildingOut.of(building)


@router.delete(
    "/buildings/{building_id}",
    status_code=204,
    summary="Delete a building and its equipment register (admin)",
    description=(
        "Deletes the building together with its equipment register (its assets). A building "
        "that has test sessions is never deleted: that is refused with 409, because sessions "
        "are the compliance record."
    ),
    responses=error_responses(409),
)
async def delete_building(
    building_id: uuid.UUID,
    principal: Principal = Depends(require_admin),
    db: AsyncSession = Depends(get_db),
) -> Response:
    await begin_write(db)
    # Locked, so that a session being created for this building waits for our outcome.
    building = await get_owned(
        db, Building, building_id, principal, what="Building", for_update=True
    )
    await db.execute(
        delete(Asset).where(
            Asset.organisation_id == principal.organisation_id, Asset.building_id == building.id
        )
    )
    await db.delete(building)
    await audit.record_by(
        db,
        principal,
        "building.deleted",
        "building",
        building.id,
        {"name": building.name, "address": building.address},
    )
    try:
        await db.commit()
    except IntegrityError as exc:  # test sessions refer to it (their foreign key refuses)
        await db.rollback()
        raise ApiError(
            409,
            f"Building {building_id} has test sessions and cannot be deleted; "
            "its sessions are the compliance record",
        ) from exc
    return Response(status_code=204)


# --- assets ------------------------------------------------------------------------------


def _concurrent_change() -> ApiError:
    return ApiError(
        409,
        "The asset conflicts with a concurrent change (its barcode was just taken, or its "
        "building deleted); retry",
        retryable=True,
    )


def _barcode_conflict(barcode: str) -> ApiError:
    return ApiError(409, f"Another asset of this organisation already has barcode {barcode!r}")


async def _check_barcode_free(
    db: AsyncSession, principal: Principal, barcode: str, asset_id: uuid.UUID | None
) -> None:
    statement = scoped(select(Asset.id), Asset, principal).where(Asset.barcode == barcode)
    if asset_id is not None:
        statement = statement.where(Asset.id != asset_id)
    if (await db.execute(statement.limit(1))).first() is not None:
        raise _barcode_conflict(barcode)


async def _save_asset(
    db: AsyncSession, principal: Principal, asset: Asset, settings: Settings
) -> None:
    """Flush, let hooks follow the change, commit; a unique or foreign key violation from a
    concurrent writer becomes a 4xx."""
    building_id, barcode = asset.building_id, asset.barcode
    try:
        await db.flush()
        await hooks.run_asset_saved_hooks(db, asset, settings)
        await db.commit()
    except IntegrityError as exc:
        await db.rollback()
        # Re-checked after the rollback: the building went away (404), or a concurrent
        # request took the barcode between our check and our write (409).
        await get_owned(db, Building, building_id, principal, what="Building")
        raise _barcode_conflict(barcode or "") from exc


@router.post(
    "/buildings/{building_id}/assets",
    status_code=201,
    response_model=AssetOut,
    summary="Add an item to a building's equipment register (admin, technician)",
    description=(
        "A barcode already used by another asset of the organisation is 409. "
        "Honours `Idempotency-Key`."
    ),
    responses=error_responses(*IDEMPOTENCY_ERROR_STATUSES),
)
async def create_asset(
    building_id: uuid.UUID,
    body: AssetCreate,
    principal: Principal = Depends(require_writer),
    db: AsyncSession = Depends(get_db),
    idempotency: IdempotentRequest = Depends(idempotency_optional),
) -> Response:
    async def work() -> Response:
        building = await get_owned(db, Building, building_id, principal, what="Building")
        if body.barcode is not None:
            await _check_barcode_free(db, principal, body.barcode, None)
        asset = Asset(
            organisation_id=principal.organisation_id,
            building_id=building.id,
            asset_type=body.asset_type.value,
            location=body.location,
            barcode=body.barcode,
            installed_on=body.installed_on,
            attributes=body.attributes,
        )
        db.add(asset)
        try:
            await db.flush()
        except IntegrityError as exc:  # a concurrent writer won the race (run() rolls back)
            raise _concurrent_change() from exc
        await audit.record_by(
            db,
            principal,
            "asset.created",
            "asset",
            asset.id,
            {
                "building_id": asset.building_id,
                "asset_type": asset.asset_type,
                "location": asset.location,
                "barcode": asset.barcode,
                "installed_on": asset.installed_on,
            },
        )
        await hooks.run_asset_saved_hooks(db, asset, idempotency.settings)
        return json_response(
            AssetOut.of(asset), status_code=201, headers={"Location": f"/v1/assets/{asset.id}"}
        )

    return await idempotency.run(principal, work)


@router.get(
    "/buildings/{building_id}/assets",
    response_model=Page[AssetOut],
    summary="List a building's equipment register, newest first",
    responses=error_responses(400),
)
async def get_assets(
    building_id: uuid.UUID,
    params: PageParams = Depends(page_params),
    principal: Principal = Depends(require_reader),
    db: AsyncSession = Depends(get_db),
) -> Page[AssetOut]:
    await get_owned(db, Building, building_id, principal, what="Building")
    rows, next_cursor = await paginate(
        db,
        list_assets(principal, building_id),
        Asset,
        params,
        endpoint=ASSETS_ENDPOINT,
        filters={"building_id": str(building_id)},
        organisation_id=principal.organisation_id,
    )
    return Page[AssetOut](data=[AssetOut.of(a) for a in rows], next_cursor=next_cursor)


@router.get("/assets/{asset_id}", response_model=AssetOut, summary="Get an asset")
async def get_asset(
    asset_id: uuid.UUID,
    principal: Principal = Depends(require_reader),
    db: AsyncSession = Depends(get_db),
) -> AssetOut:
    return AssetOut.of(await get_owned(db, Asset, asset_id, principal, what="Asset"))


@router.patch(
    "/assets/{asset_id}",
    response_model=AssetOut,
    summary="Update an asset (admin, technician); only the fields sent change",
    responses=error_responses(409),
)
async def update_asset(
    asset_id: uuid.UUID,
    body: AssetUpdate,
    request: Request,
    principal: Principal = Depends(require_writer),
    db: AsyncSession = Depends(get_db),
) -> AssetOut:
    await begin_write(db)
    asset = await get_owned(db, Asset, asset_id, principal, what="Asset", for_update=True)
    changes = body.model_dump(exclude_unset=True)
    if "building_id" in changes:
        await get_owned(db, Building, changes["building_id"], principal, what="Building")
    if changes.get("barcode") is not None:
        await _check_barcode_free(db, principal, changes["barcode"], asset.id)
    if "asset_type" in changes:
        changes["asset_type"] = changes["asset_type"].value
    changed = _changed_fields(asset, changes)
    for name, value in changes.items():
        setattr(asset, name, value)
    if changed:
        await audit.record_by(
            db,
            principal,
            "asset.updated",
            "asset",
            asset.id,
            {"changes": changed},
        )
    await _save_asset(db, principal, asset, request.app.state.settings)
    return AssetOut.of(asset)
