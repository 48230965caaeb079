"""The due list of a large organisation on PostgreSQL: 50,000 assets over 12 months.

A throwaway database is migrated and seeded (in SQL, for speed) with one organisation of
200 buildings and 50,000 assets (sprinkler valve sets: monthly and yearly; extinguishers:
6-monthly, yearly, 5-yearly; fire doors: 6-monthly and yearly), their routines, and their
occurrences from a year back to two years ahead (past ones mostly done, some missed). Then
``GET /v1/schedule/due`` pages are timed through the real app (httpx ASGITransport:
authentication, revocation check, query, serialisation), next to ``GET /v1/buildings``'s
first page as the in-run reference (the machine is shared: read the ratios). Requests
interleave, so load from elsewhere hits every kind alike. The first page's plan is
printed with EXPLAIN ANALYZE. Last, the cost of recomputing one building's schedule
(what completing a building-wide session does) is timed, in a rolled-back transaction.

Run::

    .venv/bin/python -m bench.schedule
    .venv/bin/python -m bench.schedule --assets 10000 --requests 50
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import asyncpg
import httpx
from sqlalchemy import make_url

from bench._server import (
    DEFAULT_SERVER_URL,
    SERVER_URL_ENV,
    SeededUser,
    new_jwt_secret,
    seed_technician,
    throwaway_database,
)
from src.app.core.settings import Settings
from src.app.main import create_app
from src.app.rules.cli import load_catalogue
from src.app.schedule import service

BUILDINGS = 200
WARM_UP = 10

SEED_BUILDINGS = """
INSERT INTO buildings (id, organisation_id, name, address, building_type, metadata, state,
    created_at, updated_at)
SELECT gen_random_uuid(), $1::uuid, 'Bench building ' || g, 'Bench street ' || g, 'office',
    '{}'::jsonb, 'NSW', now(), now()
FROM generate_series(1, $2::int) AS g
"""

SEED_ASSETS = """
INSERT INTO assets (id, organisation_id, building_id, asset_type, location, barcode,
    installed_on, attributes, created_at, updated_at)
SELECT gen_random_uuid(), $1::uuid, b.id,
    (ARRAY['sprinkler_valve_set', 'fire_extinguisher', 'fire_extinguisher', 'fire_door',
           'fire_door'])[1 + g % 5],
    'Level ' || g % 20, NULL, $3::date - floor(random() * 1800)::int, '{}'::jsonb,
    now(), now()
FROM generate_series(1, $2::int) AS g
JOIN (
    SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM buildings
    WHERE organisation_id = $1::uuid
) AS b ON b.n = g % $4::int
"""

# code, asset type, frequency, period (months), tolerance (as an interval)
ROUTINES = [
    ("AS1851-SPRINKLER-1M", "sprinkler_valve_set", "monthly", 1, "7 days"),
    ("AS1851-SPRINKLER-12M", "sprinkler_valve_set", "yearly", 12, "2 months"),
    ("AS1851-EXT-6M", "fire_extinguisher", "6-monthly", 6, "1 month"),
    ("AS1851-EXT-12M", "fire_extinguisher", "yearly", 12, "2 months"),
    ("AS1851-EXT-5Y", "fire_extinguisher", "5-yearly", 60, "3 months"),
    ("AS1851-DOOR-6M", "fire_door", "6-monthly", 6, "1 month"),
    ("AS1851-DOOR-12M", "fire_door", "yearly", 12, "2 months"),
]

SEED_ROUTINES = """
INSERT INTO schedule_routines (id, organisation_id, asset_id, rule_code, frequency,
    baseline_on, effective_baseline_on, baseline_source, materialised_until,
    created_at, updated_at)
SELECT gen_random_uuid(), a.organisation_id, a.id, $2, $3, NULL, a.installed_on,
    'installed_on', $5::date, now(), now()
FROM assets a WHERE a.organisation_id = $1::uuid AND a.asset_type = $4
"""

# Occurrences from a year back to two years ahead; past ones 85% done around their date.
SEED_OCCURRENCES = """
INSERT INTO schedule_occurrences (id, organisation_id, building_id, asset_id, routine_id,
    rule_code, frequency, seq, due_on, window_start, window_end, done_on, done_session_id,
    outcome, out_of_tolerance_noted_at, created_at, updated_at)
SELECT gen_random_uuid(), r.organisation_id, a.building_id, a.id, r.id, r.rule_code,
    r.frequency, n, d.due, (d.due - $4::text::interval)::date, (d.due + $4::text::interval)::date,
    CASE WHEN d.due < $5::date - 10 AND random() < 0.85 THEN d.due + floor(random() * 9)::int - 4
    END,
    NULL, NULL, NULL, now(), now()
FROM schedule_routines r
JOIN assets a ON a.id = r.asset_id
CROSS JOIN generate_series(1, (2200 / 30 / $3::int) + 2) AS n
CROSS JOIN LATERAL (
    SELECT (r.effective_baseline_on + n * $3::int * interval '1 month')::date AS due
) AS d
WHERE r.organisation_id = $1::uuid AND r.rule_code = $2
    AND d.due BETWEEN $5::date - 366 AND $5::date + 731
"""


def _dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _seed(database_url: str, user: SeededUser, assets: int, today: date) -> None:
    connection = await asyncpg.connect(_dsn(database_url))
    try:
        await connection.execute("SET statement_timeout = 0")
        org = user.organisation_id
        await connection.execute(SEED_BUILDINGS, org, BUILDINGS)
        await connection.execute(SEED_ASSETS, org, assets, today, BUILDINGS)
        horizon = today + timedelta(days=731)
        for code, asset_type, frequency, months, tolerance in ROUTINES:
            await connection.execute(SEED_ROUTINES, org, code, frequency, asset_type, horizon)
            await connection.execute(SEED_OCCURRENCES, org, code, months, tolerance, today)
        await connection.execute(
            "UPDATE schedule_occurrences SET outcome = CASE WHEN done_on = due_on THEN 'on_time'"
            " WHEN done_on < due_on THEN 'early' ELSE 'late' END WHERE done_on IS NOT NULL"
        )
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()


async def _timed(client: httpx.AsyncClient, user: SeededUser, url: str) -> tuple[float, Any]:
    started = time.perf_counter()
    response = await client.get(url, headers=user.headers)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"{url}: {response.status_code} {response.text[:300]}")
    return elapsed, response.json()


async def _explain(database_url: str, user: SeededUser, today: date) -> str:
    from sqlalchemy.dialects import postgresql

    from src.app.core.pagination import keyset_page
    from src.app.schedule.models import ScheduleOccurrence
    from src.app.schedule.queries import SOONEST_FIRST, OccurrenceFilters, list_occurrences

    statement = keyset_page(
        list_occurrences(
            user.organisation_id,
            OccurrenceFilters(today, today + timedelta(days=365)),
            today,
        ),
        ScheduleOccurrence,
        None,
        50,
        SOONEST_FIRST,
    )
    sql = str(
        statement.compile(
            dialect=postgresql.dialect(),  # type: ignore[no-untyped-call]
            compile_kwargs={"literal_binds": True},
        )
    )
    connection = await asyncpg.connect(_dsn(database_url))
    try:
        rows = await connection.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
    finally:
        await connection.close()
    return "\n".join(r[0] for r in rows)


async def _recompute_one_building(database_url: str, settings: Settings, user: SeededUser) -> str:
    from sqlalchemy import func, select

    from src.app.buildings.models import Asset, Building
    from src.app.core.database import Database

    database = Database(database_url)
    try:
        async with database.sessionmaker() as db:
            building_id = await db.scalar(
                select(Building.id).where(Building.organisation_id == user.organisation_id).limit(1)
            )
            count = await db.scalar(
                select(func.count()).select_from(Asset).where(Asset.building_id == building_id)
            )
            started = time.perf_counter()
            await service.refresh_assets(
                db, organisation_id=user.organisation_id, settings=settings, building_id=building_id
            )
            await db.flush()
            elapsed = time.perf_counter() - started
            await db.rollback()
    finally:
        await database.dispose()
    return f"recomputing one building's schedule ({count} assets): {elapsed * 1000:.0f} ms"


async def run(database_url: str, assets: int, requests: int) -> None:
    secret = new_jwt_secret()
    user = await seed_technician(database_url, secret)
    await load_catalogue(database_url)
    settings = Settings(database_url=database_url, jwt_secret=secret, env="test")
    today = service.local_today(settings)
    started = time.perf_counter()
    await _seed(database_url, user, assets, today)
    connection = await asyncpg.connect(_dsn(database_url))
    occurrences = await connection.fetchval("SELECT count(*) FROM schedule_occurrences")
    await connection.close()
    print(
        f"seeded {assets:,} assets, {occurrences:,} occurrences in "
        f"{time.perf_counter() - started:.1f} s"
    )
    app = create_app(settings)
    year = f"from={today}&to={today + timedelta(days=365)}&limit=50"
    back = f"from={today - timedelta(days=365)}&to={today + timedelta(days=365)}&limit=50"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bench"
    ) as client:
        _, first = await _timed(client, user, f"/v1/schedule/due?{year}")
        _, buildings = await _timed(client, user, "/v1/buildings?limit=50")
        building_id = buildings["data"][0]["id"]
        cursor = first["next_cursor"]
        urls: dict[str, Callable[[], str]] = {
            "reference: GET /v1/buildings first page": lambda: "/v1/buildings?limit=50",
            "due list, 12 months, first page": lambda: f"/v1/schedule/due?{year}",
            "due list, 12 months, second page": lambda: f"/v1/schedule/due?{year}&cursor={cursor}",
            "status=due": lambda: f"/v1/schedule/due?{year}&status=due",
            "status=overdue": lambda: f"/v1/schedule/due?{back}&status=overdue",
            "status=out_of_tolerance": lambda: f"/v1/schedule/due?{back}&status=out_of_tolerance",
            "status=done": lambda: f"/v1/schedule/due?{back}&status=done",
            "one building": lambda: f"/v1/schedule/due?{year}&building_id={building_id}",
        }
        times: dict[str, list[float]] = {name: [] for name in urls}
        for index in range(WARM_UP + requests):
            for name, url in urls.items():
                elapsed, body = await _timed(client, user, url())
                if index >= WARM_UP:
                    times[name].append(elapsed)
                if index == 0 and name != next(iter(urls)):
                    assert len(body["data"]) == 50, (name, len(body["data"]))
    await app.state.database.dispose()
    reference = statistics.median(times[next(iter(urls))])
    print()
    print(f"median of {requests} requests each, in process (ASGI), ms; ratio to the reference")
    print(f"{'request':<42} {'median':>8} {'p95':>8} {'ratio':>7}")
    for name, values in times.items():
        median = statistics.median(values)
        p95 = statistics.quantiles(values, n=20)[-1]
        print(f"{name:<42} {median:>8.2f} {p95:>8.2f} {median / reference:>7.2f}")
    print()
    print("EXPLAIN ANALYZE of the first page (12 months, no status filter):")
    print(await _explain(database_url, user, today))
    print()
    print(await _recompute_one_building(database_url, settings, user))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=100, help="timed requests per kind")
    parser.add_argument("--server-url", default=os.environ.get(SERVER_URL_ENV, DEFAULT_SERVER_URL))
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}")
    with throwaway_database(args.server_url) as database:
        asyncio.run(run(database.url, args.assets, args.requests))
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
