"""Micro-benchmark of the results write path, in process, on SQLite and PostgreSQL.

For each log size (default 10, 1,000 and 100,000 ops) a session is seeded directly in
the database (op log rows, then its per-path state rebuilt from them), then batches of
new ops are POSTed to it through the real app (httpx ASGITransport: auth, revocation
check, idempotency, merge, commit), then three single late ops (older than the whole
log): with the per-path state their cost must not depend on the log (target: under
10 ms at 100,000 ops). The seeded ops cycle over 500 paths, so the 1,000- and
100,000-op documents are the same size and only the log differs.

Then one-op writes with ``Prefer: return=minimal``, alternating between a session
holding about 1 KB of document and one holding about 1 MB: the ratio of their median
times must stay at most 1.5 (the write's cost must not grow with the document).

Run::

    .venv/bin/python -m bench.merge_throughput
    .venv/bin/python -m bench.merge_throughput --backends sqlite --log-sizes 10,1000

PostgreSQL: a throwaway database on ``--server-url`` (default
``$FIREMODE_BENCH_DATABASE_URL`` or ``postgresql://postgres@127.0.0.1:5432/postgres``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert

from bench._server import (
    DEFAULT_SERVER_URL,
    SERVER_URL_ENV,
    SeededUser,
    create_database,
    drop_database,
    new_jwt_secret,
    seed_technician,
)
from src.app.core import migrations
from src.app.core.clock import utc_now
from src.app.core.settings import Settings
from src.app.main import create_app
from src.app.results.crdt import Op, parse_pointer
from src.app.results.hlc import HLCTimestamp, HybridLogicalClock
from src.app.results.models import ResultOp
from src.app.results.store import log_row, rebuild
from src.app.sessions.models import TestSession

SEED_PATHS = 500
LATE_TARGET_MS = 10.0
SIZE_RATIO_TARGET = 1.5
SEED_CHUNK = 5_000


@dataclass
class Row:
    backend: str
    log_size: int
    requests: int
    ops_per_s: float
    p50_ms: float
    p95_ms: float
    late_ms: float
    late_cpu_ms: float
    late_statement_ms: float | None = None


def _seed_ops(size: int, start_ms: int) -> list[Op]:
    ops = []
    for i in range(size):
        path = f"/assets/a{i % SEED_PATHS}/reading"
        ts = str(HLCTimestamp(start_ms + i // 10, i % 10))
        ops.append(Op("set", path, i, ts, "seed-device", f"seed-{i}", parse_pointer(path)))
    return ops


def _sized_ops(document_bytes: int, start_ms: int) -> list[Op]:
    """Ops whose document holds about ``document_bytes``: 1 KiB values on their own paths."""
    count = max(1, document_bytes // 1024)
    value = "x" * 1000
    return [
        Op(
            "set",
            f"/photos/p{i}",
            value,
            str(HLCTimestamp(start_ms + i, 0)),
            "seed-device",
            f"sized-{i}",
            parse_pointer(f"/photos/p{i}"),
        )
        for i in range(count)
    ]


async def _seed_session(
    app: Any, user: SeededUser, size: int, ops: list[Op] | None = None
) -> uuid.UUID:
    session_id = uuid.uuid4()
    if ops is None:
        ops = _seed_ops(size, time.time_ns() // 1_000_000 - 2 * 3600 * 1000)
    size = len(ops)
    async with app.state.database.sessionmaker() as db:
        db.add(
            TestSession(
                id=session_id, organisation_id=user.organisation_id, created_by=user.user_id
            )
        )
        await db.flush()
        table = ResultOp
        seeded_at = utc_now()
        for start in range(0, size, SEED_CHUNK):
            await db.execute(
                insert(table),
                [
                    log_row(
                        session_id,
                        start + offset + 1,
                        op,
                        user.organisation_id,
                        user.user_id,
                        seeded_at,
                    )
                    for offset, op in enumerate(ops[start : start + SEED_CHUNK])
                ],
            )
        await rebuild(await db.connection(), session_id)  # the state, from the log
        await db.commit()
    engine = app.state.database.engine
    if engine.dialect.name == "postgresql":
        # Measure a steady state, not the aftermath of a bulk load (fresh statistics,
        # visibility map set), as autovacuum would leave it shortly after.
        async with engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.exec_driver_sql("VACUUM ANALYZE result_ops, test_sessions")
    return session_id


async def _measure(
    app: Any, user: SeededUser, backend: str, size: int, requests: int, batch: int
) -> Row:
    session_id = await _seed_session(app, user, size)
    url = f"/v1/tests/sessions/{session_id}/results"
    clock = HybridLogicalClock()

    async def post(client: httpx.AsyncClient, changes: list[dict[str, Any]]) -> float:
        headers = {**user.headers, "Idempotency-Key": str(uuid.uuid4())}
        started = time.perf_counter()
        response = await client.post(
            url, json={"device_id": "live-device", "changes": changes}, headers=headers
        )
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"POST -> {response.status_code}: {response.text[:300]}")
        return elapsed

    def live(n: int) -> list[dict[str, Any]]:
        return [
            {
                "op": "set",
                "path": f"/assets/a{(n * batch + i) % SEED_PATHS}/reading",
                "value": n,
                "ts": str(clock.tick()),
                "op_id": f"live-{n}-{i}",
            }
            for i in range(batch)
        ]

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for n in range(3):  # warm-up: connections, caches
            await post(client, live(-1 - n))
        times = [await post(client, live(n)) for n in range(requests)]
        # Older than the whole log: folded into the per-path state like any other op.
        cpu_before = time.process_time()
        late = [
            await post(
                client,
                [
                    {
                        "op": "set",
                        "path": "/assets/a0/reading",
                        "value": -k,
                        "ts": str(HLCTimestamp(1_000_000 + k)),
                        "op_id": f"late-{k}",
                    }
                ],
            )
            for k in range(3)
        ]
        late_cpu = (time.process_time() - cpu_before) / len(late)
    statement_ms = None
    if backend == "postgresql":
        statement_ms = await _late_statement_ms(app.state.database.url, user, session_id)
    ordered = sorted(times)
    return Row(
        backend=backend,
        log_size=size,
        requests=requests,
        ops_per_s=requests * batch / sum(times),
        p50_ms=statistics.median(ordered) * 1000,
        p95_ms=ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000,
        late_ms=statistics.median(late) * 1000,
        late_cpu_ms=late_cpu * 1000,
        late_statement_ms=statement_ms,
    )


_LATE_WRITE = (
    "SELECT o_outcome FROM firemode_results_write($1, $2, $3, $4, 'POST', '/bench', $5, $6,"
    " '{}'::jsonb, false, now() + interval '1 day', now(), $7, 'bench', 10000000,"
    " 1000000000, 100000000000, NULL)"
)


async def _late_statement_ms(url: str, user: SeededUser, session_id: uuid.UUID) -> float:
    """Median time of the write statement alone (PostgreSQL's work plus one local round
    trip) for a single op older than the whole log."""
    import asyncpg
    from sqlalchemy import make_url

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    times = []
    try:
        for k in range(15):
            ops = json.dumps(
                [
                    [
                        "set",
                        "/assets/a1/reading",
                        -k,
                        str(HLCTimestamp(2_000_000 + k)),
                        "late",
                        f"late-statement-{k}",
                        2,
                        False,
                    ]
                ]
            )
            started = time.perf_counter()
            outcome = await conn.fetchval(
                _LATE_WRITE,
                user.organisation_id,
                user.user_id,
                session_id,
                f"late-{uuid.uuid4()}",
                "0" * 64,
                k,
                ops,
            )
            times.append(time.perf_counter() - started)
            if outcome != "ok":
                raise RuntimeError(f"late write answered {outcome}")
    finally:
        await conn.close()
    return statistics.median(times[3:]) * 1000


@dataclass
class SizeRow:
    backend: str
    small_ms: float
    large_ms: float

    @property
    def ratio(self) -> float:
        return self.large_ms / self.small_ms if self.small_ms else 0.0


async def _measure_document_size(
    app: Any, user: SeededUser, backend: str, requests: int
) -> SizeRow:
    """One-op writes with ``Prefer: return=minimal`` into a session holding about 1 KB of
    document and one holding about 1 MB, alternating, so both see the same machine."""
    start_ms = time.time_ns() // 1_000_000 - 3600 * 1000
    small = await _seed_session(app, user, 0, _sized_ops(1024, start_ms))
    large = await _seed_session(app, user, 0, _sized_ops(1024 * 1024, start_ms))
    clock = HybridLogicalClock()
    timings: dict[uuid.UUID, list[float]] = {small: [], large: []}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for n in range(requests + 3):
            for session_id in (small, large):
                change = {
                    "op": "set",
                    "path": "/photos/p0",
                    "value": n,
                    "ts": str(clock.tick()),
                    "op_id": f"size-{n}",
                }
                headers = {
                    **user.headers,
                    "Idempotency-Key": str(uuid.uuid4()),
                    "Prefer": "return=minimal",
                }
                started = time.perf_counter()
                response = await client.post(
                    f"/v1/tests/sessions/{session_id}/results",
                    json={"device_id": "live-device", "changes": [change]},
                    headers=headers,
                )
                elapsed = time.perf_counter() - started
                if response.status_code != 200:
                    raise RuntimeError(f"POST -> {response.status_code}: {response.text[:300]}")
                if n >= 3:  # warm-up
                    timings[session_id].append(elapsed)
    return SizeRow(
        backend,
        statistics.median(timings[small]) * 1000,
        statistics.median(timings[large]) * 1000,
    )


async def _run_backend(
    backend: str, url: str, sizes: list[int], requests: int, batch: int
) -> tuple[list[Row], SizeRow]:
    secret = new_jwt_secret()
    user = await seed_technician(url, secret)
    app = create_app(Settings(database_url=url, jwt_secret=secret, env="test"))
    try:
        rows = [await _measure(app, user, backend, size, requests, batch) for size in sizes]
        return rows, await _measure_document_size(app, user, backend, requests)
    finally:
        await app.state.database.dispose()


def run(
    backend: str, sizes: list[int], requests: int, batch: int, server_url: str
) -> tuple[list[Row], SizeRow]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="fm-merge-bench-") as tmp:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
            migrations.upgrade(url)  # outside the loop: env.py runs its own
            return asyncio.run(_run_backend(backend, url, sizes, requests, batch))
    database = create_database(server_url, prefix="fm_merge_bench")
    try:
        migrations.upgrade(database.url)
        return asyncio.run(_run_backend(backend, database.url, sizes, requests, batch))
    finally:
        drop_database(database)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--log-sizes", default="10,1000,100000")
    parser.add_argument("--requests", type=int, default=100, help="measured POSTs per size")
    parser.add_argument("--batch", type=int, default=20, help="ops per POST")
    parser.add_argument("--server-url", default=os.environ.get(SERVER_URL_ENV, DEFAULT_SERVER_URL))
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.log_sizes.split(",") if s.strip()]
    rows: list[Row] = []
    size_rows: list[SizeRow] = []
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        backend_rows, size_row = run(backend, sizes, args.requests, args.batch, args.server_url)
        rows.extend(backend_rows)
        size_rows.append(size_row)
    print(
        f"merge path, in process (HTTP through the app), {args.requests} sequential POSTs of"
        f" {args.batch} ops per log size, then 3 single late ops (older than the whole log;"
        f" target < {LATE_TARGET_MS:.0f} ms at 100,000 ops)"
    )
    print(
        f"{'backend':<11}{'log ops':>9}{'ops/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'late op ms':>12}"
        f"{'late op CPU ms':>16}{'late stmt ms':>14}"
    )
    for row in rows:
        print(
            f"{row.backend:<11}{row.log_size:>9}{row.ops_per_s:>10.0f}{row.p50_ms:>9.2f}"
            f"{row.p95_ms:>9.2f}{row.late_ms:>12.2f}{row.late_cpu_ms:>16.2f}"
            + (f"{row.late_statement_ms:>14.2f}" if row.late_statement_ms is not None else "")
        )
    print(
        "(late op CPU: this process's CPU per late POST, app and client together; late stmt:"
        " PostgreSQL only, the write statement alone for a late op, median of 12)"
    )
    print()
    print(
        f"one-op writes with Prefer: return=minimal, {args.requests} each, alternating between"
        f" a session holding ~1 KB and one holding ~1 MB of document (target ratio <="
        f" {SIZE_RATIO_TARGET})"
    )
    print(f"{'backend':<11}{'1 KB p50 ms':>13}{'1 MB p50 ms':>13}{'ratio':>8}")
    for size_row in size_rows:
        print(
            f"{size_row.backend:<11}{size_row.small_ms:>13.2f}{size_row.large_ms:>13.2f}"
            f"{size_row.ratio:>8.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
