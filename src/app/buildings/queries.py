"""The list queries of buildings and assets, built without I/O, so tests can EXPLAIN them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select

from src.app.buildings.models import Asset, Building
from src.app.core.tenancy import Principal, scoped

BUILDINGS_ENDPOINT = "GET /v1/buildings"
ASSETS_ENDPOINT = "GET /v1/buildings/{id}/assets"


@dataclass(frozen=True, slots=True)
class BuildingFilters:
    building_type: str | None = None
    q: str | None = None

    @classmethod
    def normalised(cls, building_type: str | None, q: str | None) -> BuildingFilters:
        # An empty search box means "no filter", with the same cursor binding as none.
        return cls(building_type=building_type or None, q=(q or "").strip() or None)

    def binding(self) -> dict[str, Any]:
        """What a cursor of this list is bound to."""
        return {"building_type": self.building_type, "q": self.q}


def list_buildings(principal: Principal, filters: BuildingFilters) -> Select[Any]:
    statement = scoped(select(Building), Building, principal)
    if filters.building_type is not None:
        statement = statement.where(Building.building_type == filters.building_type)
    if filters.q is not None:
        # lower(name) LIKE lower('%q%') with % and _ escaped: the same on both databases.
        statement = statement.where(Building.name.icontains(filters.q, autoescape=True))
    return statement


def list_assets(principal: Principal, building_id: uuid.UUID) -> Select[Any]:
    return scoped(select(Asset), Asset, principal).where(Asset.building_id == building_id)
