"""Fast seeding for pagination tests: rows straight through the ORM, with chosen
``created_at`` values (ties included), in one organisation."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI

from src.app.buildings.models import Asset, Building
from src.app.sessions.models import TestSession
from tests.conftest import Tenant

BASE_TIME = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)


@dataclass(frozen=True)
class ListKind:
    """One paginated list: where it is and how to make its rows."""

    name: str

    def url(self, scope_id: uuid.UUID) -> str:
        if self.name == "assets":
            return f"/v1/buildings/{scope_id}/assets"
        return "/v1/buildings" if self.name == "buildings" else "/v1/tests/sessions"


SESSIONS, BUILDINGS, ASSETS = ListKind("sessions"), ListKind("buildings"), ListKind("assets")
KINDS = (SESSIONS, BUILDINGS, ASSETS)


async def prepare(app: FastAPI, tenant: Tenant, kind: ListKind) -> uuid.UUID:
    """The parent the list hangs off: a building for sessions and assets (it does not
    appear in those lists); for buildings, a nil id (nothing is created)."""
    if kind is BUILDINGS:
        return uuid.UUID(int=0)
    building = Building(
        id=uuid.uuid4(),
        organisation_id=tenant.organisation_id,
        name="Parent",
        address="1 Parent St",
        building_type="office",
        metadata_={},
    )
    async with app.state.database.sessionmaker() as session:
        session.add(building)
        await session.commit()
    return building.id


def _row(kind: ListKind, tenant: Tenant, parent: uuid.UUID, created_at: datetime) -> Any:
    common: dict[str, Any] = {
        "id": uuid.uuid4(),
        "organisation_id": tenant.organisation_id,
        "created_at": created_at,
        "updated_at": created_at,
    }
    if kind is SESSIONS:
        return TestSession(building_id=parent, session_name="S", status="draft", **common)
    if kind is ASSETS:
        return Asset(building_id=parent, asset_type="fire_extinguisher", **common)
    return Building(name="B", address="A", building_type="office", metadata_={}, **common)


async def insert_rows(
    app: FastAPI, tenant: Tenant, kind: ListKind, parent: uuid.UUID, offsets_us: list[int]
) -> list[str]:
    """One row per offset (microseconds after BASE_TIME); returns their ids."""
    rows = [
        _row(kind, tenant, parent, BASE_TIME + timedelta(microseconds=offset))
        for offset in offsets_us
    ]
    async with app.state.database.sessionmaker() as session:
        session.add_all(rows)
        await session.commit()
    return [str(row.id) for row in rows]


def newest_first(rows: list[tuple[int, str]]) -> list[str]:
    """The API's order: created_at DESC, id DESC (UUIDs compare as 128-bit numbers)."""
    return [
        row_id for _, row_id in sorted(rows, key=lambda r: (r[0], uuid.UUID(r[1])), reverse=True)
    ]
