"""The offline bundle of a large building, against a real server (uvicorn, 1 worker).

A throwaway PostgreSQL database gets the rule catalogue and one organisation with two
buildings: a small one (``--small`` assets) and a large one (``--assets``, default
5,000), each with 20 open sessions whose results documents hold answers for 100 assets.
Their schedules are materialised by the real code (``refresh_assets``: timed). Then, on
a uvicorn server started for the run:

* ``GET /v1/buildings/{id}/offline-bundle``: compressed and uncompressed size, time to
  first byte, total time, and the server process's peak resident memory during the
  request above its idle level (sampled every 2 ms from /proc), for both buildings: a
  bundle that streams keeps the peak flat as the building grows;
* the same with ``If-None-Match`` (304), next to ``GET /health`` as the in-run
  reference (the machine is shared: read ratios).

Run::

    .venv/bin/python -m bench.offline_bundle
    .venv/bin/python -m bench.offline_bundle --assets 2000 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import threading
import time
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy import make_url

from bench._server import (
    DEFAULT_SERVER_URL,
    SERVER_URL_ENV,
    SeededUser,
    UvicornServer,
    new_jwt_secret,
    seed_technician,
    throwaway_database,
)
from src.app.core.database import Database
from src.app.core.settings import Settings
from src.app.rules.cli import load_catalogue
from src.app.schedule import service

SESSIONS = 20
ANSWERED_ASSETS = 100

SEED_BUILDING = """
INSERT INTO buildings (id, organisation_id, name, address, building_type, metadata, state,
    created_at, updated_at)
VALUES ($2::uuid, $1::uuid, $3, '1 Bench Street, Sydney NSW 2000', 'office', '{}'::jsonb,
    'NSW', now(), now())
"""

SEED_ASSETS = """
INSERT INTO assets (id, organisation_id, building_id, asset_type, location, barcode,
    installed_on, attributes, created_at, updated_at)
SELECT gen_random_uuid(), $1::uuid, $2::uuid,
    (ARRAY['fire_extinguisher', 'fire_extinguisher', 'fire_door', 'emergency_light',
           'exit_sign', 'sprinkler_valve_set', 'fire_hose_reel', 'smoke_detector'])[1 + g % 8],
    'Level ' || g % 30 || ', bay ' || g % 17, 'BN-' || $2::text || '-' || g,
    current_date - 30 - floor(random() * 1800)::int,
    jsonb_build_object('floor', 'L' || g % 30, 'make', 'Acme', 'size', '4.5 kg'),
    now(), now()
FROM generate_series(1, $3::int) AS g
"""

SEED_SESSIONS = """
INSERT INTO test_sessions (id, organisation_id, building_id, session_name, frequency,
    scheduled_for, status, created_by, results_document, results_version, results_last_key,
    results_size_bytes, created_at, updated_at)
SELECT gen_random_uuid(), $1::uuid, $2::uuid, 'Open session ' || s, '6-monthly',
    current_date, 'in_progress', $3::uuid, d.doc, $4::int, NULL, length(d.doc::text),
    now(), now()
FROM generate_series(1, $5::int) AS s
CROSS JOIN LATERAL (
    SELECT jsonb_build_object('checklists', jsonb_object_agg(a.id::text, jsonb_build_object(
        'AS1851-EXT-6M', jsonb_build_object('pressure_ok', 'pass', 'pressure_kpa', 1200,
            'tag_ok', 'pass', 'note', 'Serviced, tag replaced (' || s || ')')))) AS doc
    FROM (SELECT id FROM assets WHERE building_id = $2::uuid ORDER BY id LIMIT $4::int) AS a
) AS d
"""


@dataclass
class Figures:
    assets: int
    occurrences: int
    materialise_s: float
    compressed: int
    uncompressed: int
    ttfb_ms: float
    total_ms: float
    peak_rss_delta_mib: float
    not_modified_ms: float


def _dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


Seeded = dict[str, tuple[uuid.UUID, int, float]]


async def _seed(database_url: str, user: SeededUser, sizes: dict[str, int]) -> Seeded:
    """Buildings with assets and open sessions; returns name -> (id, occurrences, seconds)."""
    settings = Settings(database_url=database_url, env="test")
    connection = await asyncpg.connect(_dsn(database_url))
    database = Database(database_url)
    seeded: Seeded = {}
    try:
        for name, assets in sizes.items():
            building_id = uuid.uuid4()
            org = user.organisation_id
            await connection.execute(SEED_BUILDING, org, building_id, f"Bench {name}")
            await connection.execute(SEED_ASSETS, org, building_id, assets)
            await connection.execute(
                SEED_SESSIONS, org, building_id, user.user_id, ANSWERED_ASSETS, SESSIONS
            )
            started = time.perf_counter()
            async with database.sessionmaker() as db:
                await service.refresh_assets(
                    db, organisation_id=org, settings=settings, building_id=building_id
                )
                await db.commit()
            elapsed = time.perf_counter() - started
            occurrences = await connection.fetchval(
                "SELECT count(*) FROM schedule_occurrences WHERE building_id = $1", building_id
            )
            seeded[name] = (building_id, occurrences, elapsed)
        await connection.execute("VACUUM ANALYZE")
    finally:
        await database.dispose()
        await connection.close()
    return seeded


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class _PeakSampler:
    """Samples a process's resident memory every 2 ms in a thread; keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = _rss_kib(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_kib(self.pid))
            time.sleep(0.002)

    def __enter__(self) -> _PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


async def _fetch(
    client: httpx.AsyncClient, url: str, user: SeededUser, pid: int
) -> tuple[float, float, int, int, float, str]:
    idle = _rss_kib(pid)
    decompressor = zlib.decompressobj(31)
    compressed = uncompressed = 0
    with _PeakSampler(pid) as sampler:
        started = time.perf_counter()
        first_byte = 0.0
        async with client.stream("GET", url, headers=user.headers) as response:
            if response.status_code != 200:
                raise RuntimeError(f"{response.status_code}: {(await response.aread())[:300]!r}")
            async for chunk in response.aiter_raw():
                if not first_byte:
                    first_byte = time.perf_counter() - started
                compressed += len(chunk)
                uncompressed += len(decompressor.decompress(chunk))
            etag = response.headers["etag"]
        total = time.perf_counter() - started
    return (
        first_byte * 1000,
        total * 1000,
        compressed,
        uncompressed,
        (sampler.peak - idle) / 1024,
        etag,
    )


async def _timed(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], status: int
) -> float:
    started = time.perf_counter()
    response = await client.get(url, headers=headers)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != status:
        raise RuntimeError(f"{url}: {response.status_code} {response.text[:200]}")
    return elapsed


async def run(database_url: str, sizes: dict[str, int], repeat: int) -> None:
    secret = new_jwt_secret()
    user = await seed_technician(database_url, secret)
    await load_catalogue(database_url)
    seeded = await _seed(database_url, user, sizes)
    env = {
        "FIREMODE_DATABASE_URL": database_url,
        "FIREMODE_JWT_SECRET": secret,
        "FIREMODE_ENV": "production",
        "FIREMODE_REDIS_URL": None,
    }
    figures: list[Figures] = []
    reference: list[float] = []
    with UvicornServer("src.app.main:app", env=env).start() as server:
        pid = server.worker_pids()[0]
        async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as client:
            for name, (building_id, occurrences, materialise_s) in seeded.items():
                url = f"/v1/buildings/{building_id}/offline-bundle"
                await _fetch(client, url, user, pid)  # warm-up
                runs = [await _fetch(client, url, user, pid) for _ in range(repeat)]
                etag = runs[-1][5]
                not_modified = []
                for _ in range(50):
                    headers = {**user.headers, "If-None-Match": etag}
                    not_modified.append(await _timed(client, url, headers, 304))
                    reference.append(await _timed(client, "/health", {}, 200))
                figures.append(
                    Figures(
                        assets=sizes[name],
                        occurrences=occurrences,
                        materialise_s=materialise_s,
                        compressed=runs[-1][2],
                        uncompressed=runs[-1][3],
                        ttfb_ms=statistics.median(r[0] for r in runs),
                        total_ms=statistics.median(r[1] for r in runs),
                        peak_rss_delta_mib=max(r[4] for r in runs),
                        not_modified_ms=statistics.median(not_modified),
                    )
                )
    health = statistics.median(reference)
    print()
    print(f"median of {repeat} bundles each (peak memory: the worst); 304: median of 50")
    header = (
        f"{'assets':>7} {'occurr.':>8} {'materialise s':>14} {'gzip KiB':>9} {'json KiB':>9} "
        f"{'TTFB ms':>8} {'total ms':>9} {'peak RSS +MiB':>14} {'304 ms':>7} {'304/health':>11}"
    )
    print(header)
    for f in figures:
        print(
            f"{f.assets:>7,} {f.occurrences:>8,} {f.materialise_s:>14.1f} "
            f"{f.compressed / 1024:>9.0f} {f.uncompressed / 1024:>9.0f} {f.ttfb_ms:>8.0f} "
            f"{f.total_ms:>9.0f} {f.peak_rss_delta_mib:>14.1f} {f.not_modified_ms:>7.2f} "
            f"{f.not_modified_ms / health:>11.2f}"
        )
    print(f"reference GET /health: median {health:.2f} ms")
    print(json.dumps([f.__dict__ for f in figures]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, default=5_000)
    parser.add_argument("--small", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--server-url", default=os.environ.get(SERVER_URL_ENV, DEFAULT_SERVER_URL))
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}")
    with throwaway_database(args.server_url) as database:
        asyncio.run(run(database.url, {"small": args.small, "large": args.assets}, args.repeat))
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
