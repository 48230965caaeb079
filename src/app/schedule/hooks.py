"""The schedule follows changes made in lower domains through their hooks (registered by
``register``, called from ``src/app/routers.py``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.buildings import hooks as buildings_hooks
from src.app.buildings.models import Asset, Building
from src.app.core.errors import ApiError, FieldError
from src.app.core.settings import Settings
from src.app.core.tenancy import Principal
from src.app.schedule import service
from src.app.schedule.models import ScheduleRoutine, SessionRoutine
from src.app.sessions import hooks as sessions_hooks
from src.app.sessions.models import TestSession


async def asset_saved(db: AsyncSession, asset: Asset, settings: Settings) -> None:
    """Its type (hence routines), installation date or building may have changed."""
    await service.refresh_assets(
        db, organisation_id=asset.organisation_id, settings=settings, asset_ids=[asset.id]
    )


async def building_state_changed(db: AsyncSession, building: Building, settings: Settings) -> None:
    """Other public holidays: the working-day windows of its assets move."""
    await service.refresh_assets(
        db,
        organisation_id=building.organisation_id,
        settings=settings,
        building_id=building.id,
    )


async def session_created(
    db: AsyncSession, test_session: TestSession, routines: Sequence[tuple[uuid.UUID, str]]
) -> None:
    """Records the routines the session plans to cover; each must be a routine of an asset
    of the session's building (422 otherwise, pointing at the entry)."""
    wanted = list(dict.fromkeys(routines))
    if not wanted:
        return
    rows = await db.execute(
        select(ScheduleRoutine.asset_id, ScheduleRoutine.rule_code)
        .join(Asset, Asset.id == ScheduleRoutine.asset_id)
        .where(
            Asset.organisation_id == test_session.organisation_id,
            Asset.building_id == test_session.building_id,
            ScheduleRoutine.asset_id.in_({asset_id for asset_id, _ in wanted}),
        )
    )
    known = {(asset_id, code) for asset_id, code in rows}
    for index, (asset_id, code) in enumerate(routines):
        if (asset_id, code) not in known:
            detail = f"asset {asset_id} of this building has no routine {code!r}"
            raise ApiError(
                422, detail, errors=[FieldError(pointer=f"/routines/{index}", detail=detail)]
            )
    db.add_all(
        SessionRoutine(
            session_id=test_session.id,
            asset_id=asset_id,
            rule_code=code,
            organisation_id=test_session.organisation_id,
        )
        for asset_id, code in wanted
    )
    await db.flush()


async def session_completed(
    db: AsyncSession, test_session: TestSession, _by: Principal, settings: Settings
) -> None:
    """Marks the occurrences it covered done: its declared routines' assets, else (with a
    frequency) every asset of its building."""
    declared = (
        (
            await db.execute(
                select(SessionRoutine.asset_id)
                .where(SessionRoutine.session_id == test_session.id)
                .distinct()
            )
        )
        .scalars()
        .all()
    )
    if not declared and (test_session.frequency is None or test_session.building_id is None):
        return
    await service.refresh_assets(
        db,
        organisation_id=test_session.organisation_id,
        settings=settings,
        asset_ids=declared or None,
        building_id=None if declared else test_session.building_id,
    )


def register() -> None:
    buildings_hooks.on_asset_saved(asset_saved)
    buildings_hooks.on_building_state_changed(building_state_changed)
    sessions_hooks.on_session_created(session_created)
    sessions_hooks.on_session_completed(session_completed)
