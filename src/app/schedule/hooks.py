"""The schedule follows changes made in lower domains through their hooks (registered by
``register``, called from ``src/app/routers.py``)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from src.app.buildings import hooks as buildings_hooks
from src.app.buildings.models import Asset, Building
from src.app.core.settings import get_settings
from src.app.schedule import service


async def asset_saved(db: AsyncSession, asset: Asset) -> None:
    """Its type (hence routines), installation date or building may have changed."""
    await service.refresh_assets(
        db, organisation_id=asset.organisation_id, settings=get_settings(), asset_ids=[asset.id]
    )


async def building_state_changed(db: AsyncSession, building: Building) -> None:
    """Other public holidays: the working-day windows of its assets move."""
    await service.refresh_assets(
        db,
        organisation_id=building.organisation_id,
        settings=get_settings(),
        building_id=building.id,
    )


def register() -> None:
    buildings_hooks.on_asset_saved(asset_saved)
    buildings_hooks.on_building_state_changed(building_state_changed)
