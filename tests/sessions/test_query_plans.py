"""The list queries' plans on PostgreSQL: each one, first page and a cursor page, is an index
scan on its intended index with no Sort and no Seq Scan, over 120,000 sessions spread over
several organisations and buildings. The statements are built by the same functions the
routers use (``list_*`` and ``keyset_page``), so the test follows the code.

Everything runs inside one transaction that is rolled back, statistics included, so the
seeded rows never reach the other tests.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import Select, insert, text
from sqlalchemy.ext.asyncio import AsyncConnection

from src.app.buildings.models import Asset, Building
from src.app.buildings.queries import BuildingFilters, list_assets, list_buildings
from src.app.core.cursor import CursorPosition
from src.app.core.pagination import keyset_page
from src.app.core.tenancy import Principal, Role
from src.app.identity.models import Organisation
from src.app.identity.tokens import AccessClaims
from src.app.sessions.models import SessionStatus, TestSession
from src.app.sessions.queries import SessionFilters, list_sessions

ORGANISATIONS = 5
BUILDINGS_PER_ORG = 20
SESSIONS = 120_000
EXTRA_BUILDINGS = 30_000  # so the buildings list is big enough to need its indexes
ASSETS = 30_000
LIMIT = 50
BUILDING_TYPES = ("office", "hospital", "school", "warehouse", "retail")


def _principal(organisation_id: uuid.UUID) -> Principal:
    now = datetime.now(UTC)
    claims = AccessClaims(uuid.uuid4(), organisation_id, Role.viewer.value, "plan", now, now)
    return Principal(claims.user_id, organisation_id, Role.viewer, "plan", claims.expires_at)


SEED_SESSIONS = f"""
INSERT INTO test_sessions (id, organisation_id, building_id, session_name, frequency,
    scheduled_for, status, created_by, created_at, updated_at)
SELECT gen_random_uuid(), b.organisation_id, b.id, 'Session ' || t.g, 'monthly',
    date '2025-01-01' + floor(random() * 730)::int,
    (ARRAY['draft', 'scheduled', 'in_progress', 'completed'])[1 + floor(random() * 4)::int],
    NULL, t.at, t.at
FROM (
    SELECT g, timestamptz '2025-01-01 00:00:00+00' + random() * interval '700 days' AS at
    FROM generate_series(1, {SESSIONS}) AS g
) AS t
JOIN (
    SELECT id, organisation_id, row_number() OVER (ORDER BY id) - 1 AS n
    FROM buildings WHERE name = 'plan-parent'
        AND organisation_id IN (SELECT id FROM organisations WHERE name LIKE 'plan-org-%')
) AS b ON b.n = t.g % {ORGANISATIONS * BUILDINGS_PER_ORG}
"""

SEED_BUILDINGS = f"""
INSERT INTO buildings (id, organisation_id, name, address, building_type, metadata,
    created_at, updated_at)
SELECT gen_random_uuid(), o.id, 'Building ' || t.g, 'Street ' || t.g,
    (ARRAY{list(BUILDING_TYPES)})[1 + floor(random() * {len(BUILDING_TYPES)})::int],
    '{{}}'::jsonb, t.at, t.at
FROM (
    SELECT g, timestamptz '2025-01-01 00:00:00+00' + random() * interval '700 days' AS at
    FROM generate_series(1, {EXTRA_BUILDINGS}) AS g
) AS t
JOIN (
    SELECT id, row_number() OVER (ORDER BY id) - 1 AS n
    FROM organisations WHERE name LIKE 'plan-org-%'
) AS o ON o.n = t.g % {ORGANISATIONS}
"""

SEED_ASSETS = f"""
INSERT INTO assets (id, organisation_id, building_id, asset_type, location, barcode,
    installed_on, attributes, created_at, updated_at)
SELECT gen_random_uuid(), b.organisation_id, b.id, 'fire_extinguisher', 'Level ' || t.g,
    'PLAN-' || t.g, NULL, '{{}}'::jsonb, t.at, t.at
FROM (
    SELECT g, timestamptz '2025-01-01 00:00:00+00' + random() * interval '700 days' AS at
    FROM generate_series(1, {ASSETS}) AS g
) AS t
JOIN (
    SELECT id, organisation_id, row_number() OVER (ORDER BY id) - 1 AS n
    FROM buildings WHERE name = 'plan-parent'
        AND organisation_id IN (SELECT id FROM organisations WHERE name LIKE 'plan-org-%')
) AS b ON b.n = t.g % {ORGANISATIONS * BUILDINGS_PER_ORG}
"""


@dataclass(frozen=True)
class Case:
    name: str
    model: Any
    build: Callable[[Principal], Select[Any]]
    index: str
    offset: int = 5_000  # how deep the cursor page starts


def _walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _walk(child)


async def _explain(connection: AsyncConnection, statement: Select[Any]) -> dict[str, Any]:
    sql = str(statement.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
    raw = (await connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {sql}")).scalar_one()
    document = json.loads(raw) if isinstance(raw, str) else raw
    plan: dict[str, Any] = document[0]["Plan"]
    return plan


async def _position_at(
    connection: AsyncConnection, statement: Select[Any], model: Any, offset: int
) -> CursorPosition:
    """The row ``offset`` rows into the list: a cursor page starts after it."""
    probe = (
        statement.with_only_columns(model.created_at, model.id)
        .order_by(model.created_at.desc(), model.id.desc())
        .offset(offset)
        .limit(1)
    )
    row = (await connection.execute(probe)).one()
    return CursorPosition(row[0], row[1])


@pytest.mark.postgres
async def test_every_list_query_is_an_index_scan_without_sort(app: FastAPI) -> None:
    database = app.state.database
    assert database.dialect_name == "postgresql", "run with FIREMODE_TEST_BACKEND=postgresql"
    org_ids = [uuid.uuid4() for _ in range(ORGANISATIONS)]
    parent_ids = [uuid.uuid4() for _ in range(ORGANISATIONS * BUILDINGS_PER_ORG)]
    parents = [
        {
            "id": parent_ids[index],
            "organisation_id": org_ids[index // BUILDINGS_PER_ORG],
            "name": "plan-parent",
            "address": "1 Plan St",
            "building_type": "office",
            "metadata": {},
        }
        for index in range(ORGANISATIONS * BUILDINGS_PER_ORG)
    ]
    async with database.engine.connect() as connection:
        transaction = await connection.begin()
        try:
            await connection.execute(text("SET LOCAL statement_timeout = 0"))
            now = datetime.now(UTC)
            await connection.execute(
                insert(Organisation),
                [
                    {"id": org, "name": f"plan-org-{org}", "created_at": now, "updated_at": now}
                    for org in org_ids
                ],
            )
            await connection.execute(
                insert(Building),
                [
                    {**p, "metadata_": p.pop("metadata"), "created_at": now, "updated_at": now}
                    for p in (dict(p) for p in parents)
                ],
            )
            for seed in (SEED_SESSIONS, SEED_BUILDINGS, SEED_ASSETS):
                await connection.exec_driver_sql(seed)
            for table in ("organisations", "buildings", "assets", "test_sessions"):
                await connection.exec_driver_sql(f"ANALYZE {table}")
            counts = (
                await connection.execute(
                    text(
                        "SELECT count(*), count(DISTINCT created_at) FROM test_sessions "
                        "WHERE organisation_id = ANY(:ids)"
                    ),
                    {"ids": org_ids},
                )
            ).one()
            assert counts[0] == SESSIONS
            assert counts[1] > SESSIONS * 0.99  # spread out, as real rows are

            principal = _principal(org_ids[2])
            building = parent_ids[2 * BUILDINGS_PER_ORG + 3]
            cases = _cases(building)
            for case in cases:
                statement = case.build(principal)
                position = await _position_at(connection, statement, case.model, case.offset)
                for label, page_at in (("first page", None), ("cursor page", position)):
                    plan = await _explain(
                        connection, keyset_page(statement, case.model, page_at, LIMIT)
                    )
                    nodes = list(_walk(plan))
                    where = f"{case.name}, {label}: {json.dumps(plan)[:2000]}"
                    kinds = {node["Node Type"] for node in nodes}
                    assert not kinds & {"Sort", "Incremental Sort", "Seq Scan"}, where
                    assert "Bitmap Heap Scan" not in kinds, where
                    scans = [
                        n for n in nodes if n["Node Type"] in ("Index Scan", "Index Only Scan")
                    ]
                    assert [n["Index Name"] for n in scans] == [case.index], where
                    condition = scans[0].get("Index Cond", "")
                    assert "organisation_id" in condition, where
                    if page_at is not None:
                        # The keyset is an index condition, not a filter over skipped rows.
                        assert "ROW(created_at, id) <" in condition, where
        finally:
            await transaction.rollback()


def _cases(building: uuid.UUID) -> list[Case]:
    plain = "ix_test_sessions_organisation_id_created_at_id"
    by_status = "ix_test_sessions_organisation_id_status_created_at_id"
    by_building = "ix_test_sessions_organisation_id_building_id_created_at_id"

    def sessions(**filters: Any) -> Callable[[Principal], Select[Any]]:
        return lambda p: list_sessions(p, SessionFilters.normalised(**filters))

    def buildings(**filters: Any) -> Callable[[Principal], Select[Any]]:
        return lambda p: list_buildings(p, BuildingFilters.normalised(**filters))

    s = SessionStatus
    return [
        Case("sessions", TestSession, sessions(), plain),
        Case("sessions status=", TestSession, sessions(statuses=[s.completed]), by_status),
        Case(
            "sessions status IN",
            TestSession,
            sessions(statuses=[s.draft, s.in_progress]),
            plain,
        ),
        Case(
            "sessions status IN (3)",
            TestSession,
            sessions(statuses=[s.draft, s.scheduled, s.completed]),
            plain,
        ),
        Case("sessions building_id", TestSession, sessions(building_id=building), by_building, 500),
        Case("sessions date_from", TestSession, sessions(date_from=date(2026, 1, 1)), plain),
        Case("sessions date_to", TestSession, sessions(date_to=date(2025, 10, 1)), plain),
        Case(
            "sessions date range",
            TestSession,
            sessions(date_from=date(2025, 6, 1), date_to=date(2025, 12, 31)),
            plain,
        ),
        Case(
            "buildings", Building, buildings(building_type=None, q=None), _b("created_at_id"), 3_000
        ),
        Case(
            "buildings building_type",
            Building,
            buildings(building_type="hospital", q=None),
            _b("building_type_created_at_id"),
            500,
        ),
        Case(
            "buildings q", Building, buildings(building_type=None, q="1"), _b("created_at_id"), 500
        ),
        Case(
            "assets of a building",
            Asset,
            lambda p: list_assets(p, building),
            "ix_assets_organisation_id_building_id_created_at_id",
            100,
        ),
    ]


def _b(suffix: str) -> str:
    return f"ix_buildings_organisation_id_{suffix}"
