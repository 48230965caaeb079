"""What ``pool_pre_ping`` would cost on the hot path, against invalidating the pool on
the first lost connection (what FireMode does, see core/db_errors.py).

Each request of the results path checks a connection out of the pool and runs a few
statements. Pre-ping adds one round trip (``SELECT 1``) to every checkout; pool
invalidation costs nothing until a connection is found dead. This times a checkout plus
one short statement with and without pre-ping, interleaved so that the load of anything
else on the machine hits both alike, and prints the ratio.

Run::

    .venv/bin/python -m bench.pool_pre_ping
    .venv/bin/python -m bench.pool_pre_ping --rounds 5000

The server comes from ``--url`` (default ``$FIREMODE_BENCH_DATABASE_URL`` or the local
PostgreSQL's maintenance database).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


async def _one(engine: AsyncEngine) -> float:
    started = time.perf_counter()
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    return time.perf_counter() - started


async def main(url: str, rounds: int) -> None:
    plain = create_async_engine(url, pool_size=2)
    pinged = create_async_engine(url, pool_size=2, pool_pre_ping=True)
    timings: dict[str, list[float]] = {"no pre-ping (FireMode)": [], "pre-ping": []}
    try:
        for engine in (plain, pinged):  # warm the pools
            for _ in range(20):
                await _one(engine)
        for _ in range(rounds):
            timings["no pre-ping (FireMode)"].append(await _one(plain))
            timings["pre-ping"].append(await _one(pinged))
    finally:
        await plain.dispose()
        await pinged.dispose()
    reference = statistics.median(timings["no pre-ping (FireMode)"])
    print(f"checkout + SELECT 1, {rounds} rounds each, interleaved (median, ratio):")
    for name, values in timings.items():
        median = statistics.median(values)
        print(f"  {name:<24} {median * 1e6:8.0f} us   x{median / reference:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("FIREMODE_BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--rounds", type=int, default=2000)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.url, arguments.rounds))
