"""Deep-page latency of the sessions list (keyset pagination, docs/api/pagination.md) on PostgreSQL.

For each size (default 10,000 and 1,000,000 sessions) a throwaway database is created,
migrated and seeded with one organisation's sessions (dropped again at the end). Then
``GET /v1/tests/sessions?limit=50&cursor=...``, with the cursor 90% of the way down the
list, is timed through the real app (httpx ASGITransport: authentication, revocation
check, query, serialisation), together with the first page as the reference. Requests
alternate between the databases, so load from anything else on the machine hits every
size alike and the ratio stays meaningful. With keyset pagination a deep page is one
index range scan, so its latency barely depends on the table's size (OFFSET would grow
linearly with the depth).

Sessions are created in time order, as in production (``created_at`` is the insert time),
with microsecond jitter; statuses, schedule dates and 50 buildings are mixed at random.

Run::

    .venv/bin/python -m bench.pagination
    .venv/bin/python -m bench.pagination --sizes 10000,100000 --requests 100

The PostgreSQL server comes from ``--server-url`` (default ``$FIREMODE_BENCH_DATABASE_URL``
or ``postgresql://postgres@127.0.0.1:5432/postgres``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass

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
from src.app.core.cursor import CursorPosition
from src.app.core.pagination import make_cursor
from src.app.core.settings import Settings
from src.app.main import create_app
from src.app.sessions.queries import SESSIONS_ENDPOINT, SessionFilters

BUILDINGS = 50
SEED_CHUNK = 100_000
PAGE_SIZE = 50
WARM_UP = 20

SEED_BUILDINGS = """
INSERT INTO buildings (id, organisation_id, name, address, building_type, metadata,
    created_at, updated_at)
SELECT gen_random_uuid(), $1::uuid, 'Bench building ' || g, 'Bench street ' || g, 'office',
    '{}'::jsonb, now(), now()
FROM generate_series(1, $2::int) AS g
"""

# $5 = rows already there, $6 = seconds between consecutive sessions.
SEED_SESSIONS = """
INSERT INTO test_sessions (id, organisation_id, building_id, session_name, frequency,
    scheduled_for, status, created_by, created_at, updated_at)
SELECT gen_random_uuid(), $1::uuid, b.id, 'Bench session ' || t.g, 'monthly',
    date '2024-01-01' + floor(random() * 1095)::int,
    (ARRAY['draft', 'scheduled', 'in_progress', 'completed'])[1 + floor(random() * 4)::int],
    $2::uuid, t.at, t.at
FROM (
    SELECT g, timestamptz '2024-01-01 00:00:00+00'
        + ($5::int + g) * $6::float8 * interval '1 second'
        + floor(random() * 1000)::int * interval '1 microsecond' AS at
    FROM generate_series(1, $3::int) AS g
) AS t
JOIN (
    SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM buildings
    WHERE organisation_id = $1::uuid
) AS b ON b.n = t.g % $4::int
"""


@dataclass(frozen=True)
class Measurement:
    sessions: int
    first_page_ms: float
    deep_page_ms: float
    deep_p95_ms: float


def _dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass
class Target:
    """One database of a given size, its app and the two requests timed against it."""

    sessions: int
    client: httpx.AsyncClient
    user: SeededUser
    deep_cursor: str
    first: list[float]
    deep: list[float]


async def _seed(connection: asyncpg.Connection, user: SeededUser, rows: int) -> None:
    await connection.execute(SEED_BUILDINGS, user.organisation_id, BUILDINGS)
    spacing = 3 * 365 * 24 * 3600 / rows  # three years of sessions, whatever the count
    for start in range(0, rows, SEED_CHUNK):
        count = min(SEED_CHUNK, rows - start)
        await connection.execute(
            SEED_SESSIONS, user.organisation_id, user.user_id, count, BUILDINGS, start, spacing
        )
    await connection.execute("VACUUM ANALYZE")


async def _deep_cursor(
    connection: asyncpg.Connection, settings: Settings, user: SeededUser, offset: int
) -> str:
    """The cursor a client would hold after walking ``offset`` rows of the list."""
    row = await connection.fetchrow(
        "SELECT created_at, id FROM test_sessions WHERE organisation_id = $1 "
        "ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT 1",
        user.organisation_id,
        offset - 1,
    )
    assert row is not None
    position = CursorPosition(row["created_at"], uuid.UUID(str(row["id"])))
    return make_cursor(
        settings,
        position,
        endpoint=SESSIONS_ENDPOINT,
        filters=SessionFilters().binding(),
        organisation_id=user.organisation_id,
    )


async def _timed_get(target: Target, params: dict[str, str]) -> float:
    started = time.perf_counter()
    response = await target.client.get(
        "/v1/tests/sessions", params=params, headers=target.user.headers
    )
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
    body = response.json()
    if len(body["data"]) != PAGE_SIZE or body["next_cursor"] is None:
        raise RuntimeError("expected a full page followed by another")
    return elapsed


async def _prepare(database_url: str, sessions: int, stack: AsyncExitStack) -> Target:
    secret = new_jwt_secret()
    user = await seed_technician(database_url, secret)
    settings = Settings(database_url=database_url, jwt_secret=secret, env="test")
    app = create_app(settings)
    stack.push_async_callback(app.state.database.dispose)
    connection = await asyncpg.connect(_dsn(database_url))
    try:
        started = time.perf_counter()
        await _seed(connection, user, sessions)
        print(f"seeded {sessions:>9,} sessions in {time.perf_counter() - started:6.1f} s")
        cursor = await _deep_cursor(connection, settings, user, int(sessions * 0.9))
    finally:
        await connection.close()
    client = await stack.enter_async_context(
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench")
    )
    return Target(sessions, client, user, cursor, [], [])


async def run(database_urls: dict[int, str], requests: int) -> list[Measurement]:
    async with AsyncExitStack() as stack:
        targets = [await _prepare(url, size, stack) for size, url in sorted(database_urls.items())]
        limit = str(PAGE_SIZE)
        for index in range(WARM_UP + requests):
            # Interleaved, and the order rotates, so no size is always measured first.
            for target in targets[index % 2 :] + targets[: index % 2]:
                first = await _timed_get(target, {"limit": limit})
                deep = await _timed_get(target, {"limit": limit, "cursor": target.deep_cursor})
                if index >= WARM_UP:
                    target.first.append(first)
                    target.deep.append(deep)
        return [
            Measurement(
                t.sessions,
                statistics.median(t.first),
                statistics.median(t.deep),
                statistics.quantiles(t.deep, n=20)[-1],
            )
            for t in targets
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,1000000", help="comma-separated row counts")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per page")
    parser.add_argument("--server-url", default=os.environ.get(SERVER_URL_ENV, DEFAULT_SERVER_URL))
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    with ExitStack() as stack:
        urls = {
            size: stack.enter_context(throwaway_database(args.server_url)).url for size in sizes
        }
        results = asyncio.run(run(urls, args.requests))
    print()
    print(f"GET /v1/tests/sessions?limit={PAGE_SIZE}: median of {args.requests} requests each")
    print(f"{'sessions':>10} {'first page ms':>14} {'deep page (90%) ms':>19} {'deep p95 ms':>12}")
    for m in results:
        print(
            f"{m.sessions:>10,} {m.first_page_ms:>14.2f} {m.deep_page_ms:>19.2f} "
            f"{m.deep_p95_ms:>12.2f}"
        )
    if len(results) >= 2:
        small, large = results[0], results[-1]
        print(
            f"deep page ratio {large.sessions:,} / {small.sessions:,} sessions: "
            f"{large.deep_page_ms / small.deep_page_ms:.2f}x"
        )


if __name__ == "__main__":
    main()
