"""What other domains do when the equipment register changes, registered by the app at
start-up (see ``src/app/routers.py``).

Domains above buildings (the schedule) must not be imported here; they register a hook.
Hooks run inside the request's transaction, after the change is flushed and before it
commits, so their writes commit (or roll back) with it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from src.app.buildings.models import Asset, Building
from src.app.core.settings import Settings

# Hooks get the app's settings (the schedule needs its time zone), never read them globally.
AssetHook = Callable[[AsyncSession, Asset, Settings], Awaitable[None]]
BuildingHook = Callable[[AsyncSession, Building, Settings], Awaitable[None]]

_asset_hooks: list[AssetHook] = []
_building_state_hooks: list[BuildingHook] = []


def on_asset_saved(hook: AssetHook) -> None:
    """Registers ``hook`` (once) to run after an asset is created or changed."""
    if hook not in _asset_hooks:
        _asset_hooks.append(hook)


def on_building_state_changed(hook: BuildingHook) -> None:
    """Registers ``hook`` (once) to run after a building's state (its holidays) changed."""
    if hook not in _building_state_hooks:
        _building_state_hooks.append(hook)


async def run_asset_saved_hooks(db: AsyncSession, asset: Asset, settings: Settings) -> None:
    for hook in _asset_hooks:
        await hook(db, asset, settings)


async def run_building_state_hooks(
    db: AsyncSession, building: Building, settings: Settings
) -> None:
    for hook in _building_state_hooks:
        await hook(db, building, settings)
