"""The due lists' plans on PostgreSQL: every status filter, with and without a building,
first page and a cursor page, is an index scan on its intended index with no Sort and no
Seq Scan, over 300,000 occurrences of several organisations. The statements are built by
the functions the router uses (``list_occurrences`` and ``keyset_page``).

Everything runs inside one transaction that is rolled back, statistics included.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import insert, text

from src.app.buildings.models import Building
from src.app.core.cursor import CursorPosition
from src.app.core.pagination import keyset_page
from src.app.identity.models import Organisation
from src.app.schedule.models import ScheduleOccurrence
from src.app.schedule.queries import (
    SOONEST_FIRST,
    OccurrenceFilters,
    StatusFilter,
    list_occurrences,
)
from tests.sessions.test_query_plans import _explain, _walk

ORGANISATIONS = 4
BUILDINGS_PER_ORG = 25
ASSETS = 12_000
TODAY = date(2026, 12, 2)
LIMIT = 50

# Monthly occurrences of every asset over three years (one year back, two ahead); the
# past ones mostly done, some missed, a few done out of tolerance.
SEED = f"""
INSERT INTO assets (id, organisation_id, building_id, asset_type, location, barcode,
    installed_on, attributes, created_at, updated_at)
SELECT gen_random_uuid(), b.organisation_id, b.id, 'sprinkler_valve_set', 'Level ' || g,
    NULL, NULL, '{{}}'::jsonb, now(), now()
FROM generate_series(1, {ASSETS}) AS g
JOIN (
    SELECT id, organisation_id, row_number() OVER (ORDER BY id) - 1 AS n
    FROM buildings WHERE name = 'plan-schedule'
) AS b ON b.n = g % {ORGANISATIONS * BUILDINGS_PER_ORG};

INSERT INTO schedule_routines (id, organisation_id, asset_id, rule_code, frequency,
    baseline_on, effective_baseline_on, baseline_source, materialised_until,
    created_at, updated_at)
SELECT gen_random_uuid(), a.organisation_id, a.id, 'AS1851-SPRINKLER-1M', 'monthly', NULL,
    date '2025-11-01' + floor(random() * 28)::int, 'installed_on', date '2028-12-31',
    now(), now()
FROM assets a JOIN buildings b ON b.id = a.building_id WHERE b.name = 'plan-schedule';

INSERT INTO schedule_occurrences (id, organisation_id, building_id, asset_id, routine_id,
    rule_code, frequency, seq, due_on, window_start, window_end, done_on, done_session_id,
    outcome, out_of_tolerance_noted_at, created_at, updated_at)
SELECT gen_random_uuid(), r.organisation_id, a.building_id, r.asset_id, r.id, r.rule_code,
    r.frequency, n, d.due, d.due - 7, d.due + 7,
    CASE WHEN d.due < date '{TODAY}' - 7 AND random() < 0.9 THEN d.due + 2 END, NULL,
    NULL, NULL, now(), now()
FROM schedule_routines r
JOIN assets a ON a.id = r.asset_id
CROSS JOIN generate_series(1, 25) AS n
CROSS JOIN LATERAL (SELECT (r.effective_baseline_on + n * interval '1 month')::date AS due) d
WHERE r.rule_code = 'AS1851-SPRINKLER-1M' AND a.location LIKE 'Level %';

UPDATE schedule_occurrences SET outcome = CASE WHEN random() < 0.05 THEN 'out_of_tolerance'
    ELSE 'late' END WHERE done_on IS NOT NULL;
"""

OPEN = "ix_schedule_occurrences_open_organisation_id_due_on_id"
ALL = "ix_schedule_occurrences_organisation_id_due_on_id"
BY_BUILDING = "ix_schedule_occurrences_organisation_id_building_id_due_on_id"


def _cases(building: uuid.UUID) -> list[tuple[str, OccurrenceFilters, str]]:
    year = (TODAY, date(2027, 12, 2))
    back = (date(2025, 12, 1), date(2027, 12, 2))
    return [
        ("whole year", OccurrenceFilters(*year), ALL),
        ("due", OccurrenceFilters(*year, status=StatusFilter.due), OPEN),
        ("overdue", OccurrenceFilters(*back, status=StatusFilter.overdue), OPEN),
        ("out of tolerance", OccurrenceFilters(*back, status=StatusFilter.out_of_tolerance), ALL),
        ("done", OccurrenceFilters(*back, status=StatusFilter.done), ALL),
        ("building", OccurrenceFilters(*back, building_id=building), BY_BUILDING),
        (
            "building due",
            OccurrenceFilters(*year, building_id=building, status=StatusFilter.due),
            BY_BUILDING,
        ),
    ]


@pytest.mark.postgres
async def test_every_due_list_query_is_an_index_scan_without_sort(app: FastAPI) -> None:
    database = app.state.database
    assert database.dialect_name == "postgresql", "run with FIREMODE_TEST_BACKEND=postgresql"
    org_ids = [uuid.uuid4() for _ in range(ORGANISATIONS)]
    building_ids = [uuid.uuid4() for _ in range(ORGANISATIONS * BUILDINGS_PER_ORG)]
    now = datetime.now(UTC)
    async with database.engine.connect() as connection:
        transaction = await connection.begin()
        try:
            await connection.execute(text("SET LOCAL statement_timeout = 0"))
            await connection.execute(
                insert(Organisation),
                [
                    {"id": o, "name": f"plan-{o}", "created_at": now, "updated_at": now}
                    for o in org_ids
                ],
            )
            await connection.execute(
                insert(Building),
                [
                    {
                        "id": b,
                        "organisation_id": org_ids[i // BUILDINGS_PER_ORG],
                        "name": "plan-schedule",
                        "address": "1 Plan St",
                        "building_type": "office",
                        "metadata_": {},
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i, b in enumerate(building_ids)
                ],
            )
            for statement in SEED.split(";\n"):
                if statement.strip():
                    await connection.exec_driver_sql(statement)
            for table in ("assets", "schedule_routines", "schedule_occurrences"):
                await connection.exec_driver_sql(f"ANALYZE {table}")
            total = (
                await connection.execute(
                    text(
                        "SELECT count(*) FROM schedule_occurrences WHERE organisation_id = ANY(:o)"
                    ),
                    {"o": org_ids},
                )
            ).scalar_one()
            assert total == ASSETS * 25
            organisation = org_ids[1]
            building = building_ids[BUILDINGS_PER_ORG + 3]
            for name, filters, index in _cases(building):
                statement = list_occurrences(organisation, filters, TODAY)
                probe = (
                    statement.with_only_columns(ScheduleOccurrence.due_on, ScheduleOccurrence.id)
                    .order_by(ScheduleOccurrence.due_on, ScheduleOccurrence.id)
                    .offset(60)
                    .limit(1)
                )
                row = (await connection.execute(probe)).one()
                position = CursorPosition(row[0], row[1])
                for label, page_at in (("first page", None), ("cursor page", position)):
                    page = keyset_page(statement, ScheduleOccurrence, page_at, LIMIT, SOONEST_FIRST)
                    plan = await _explain(connection, page)
                    _check(plan, index, f"{name}, {label}", cursor=page_at is not None)
        finally:
            await transaction.rollback()


def _check(plan: dict[str, Any], index: str, where: str, *, cursor: bool) -> None:
    nodes = list(_walk(plan))
    detail = f"{where}: {json.dumps(plan)[:2000]}"
    kinds = {node["Node Type"] for node in nodes}
    assert not kinds & {"Sort", "Incremental Sort", "Seq Scan", "Bitmap Heap Scan"}, detail
    scans = [n for n in nodes if n["Node Type"] in ("Index Scan", "Index Only Scan")]
    assert [n["Index Name"] for n in scans] == [index], detail
    condition = scans[0].get("Index Cond", "")
    assert "organisation_id" in condition and "due_on" in condition, detail
    if cursor:
        assert "ROW(due_on, id) >" in condition, detail
