"""What the results write pays to get a pooled connection and give it back.

``core/database.py`` ``driver_connection`` takes the pool's raw connection (after its
admission queue, ``Database.driver_slot``) rather than an engine ``Connection``. This
prints this process's CPU per checkout-and-return of three ways, in rounds that
interleave them so that anything else on the machine hits all three alike:

- ``engine.connect()``: an engine ``Connection`` and its driver connection (the way
  before);
- ``driver_connection``: the admission queue and the pool's raw connection (the way now);
- ``driver_slot`` alone: the admission queue's share.

Run::

    .venv/bin/python -m bench.driver_checkout
    .venv/bin/python -m bench.driver_checkout --rounds 8 --checkouts 5000

The server comes from ``--server-url`` (default ``$FIREMODE_BENCH_DATABASE_URL`` or the
local PostgreSQL's maintenance database). No statement is sent: only the pool is measured,
on uvloop as in the server.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Awaitable, Callable

import uvloop
from sqlalchemy import make_url

from bench._server import DEFAULT_SERVER_URL, SERVER_URL_ENV
from src.app.core.database import Database, driver_connection


async def _per_checkout_us(checkout: Callable[[], Awaitable[None]], checkouts: int) -> float:
    started = time.process_time()
    for _ in range(checkouts):
        await checkout()
    return (time.process_time() - started) / checkouts * 1e6


async def _measure(url: str, rounds: int, checkouts: int) -> dict[str, float]:
    database = Database(url, pool_size=4, max_overflow=0)

    async def engine_connection() -> None:
        async with database.engine.connect() as conn:
            await conn.get_raw_connection()

    async def driver() -> None:
        async with driver_connection(database):
            pass

    async def slot() -> None:
        async with database.driver_slot():
            pass

    ways = {"engine.connect()": engine_connection, "driver_connection": driver, "slot": slot}
    best = dict.fromkeys(ways, float("inf"))
    try:
        async with driver_connection(database) as conn:  # the pool holds a connection
            await conn.fetchval("SELECT 1")
        for _ in range(rounds):
            for name, checkout in ways.items():
                best[name] = min(best[name], await _per_checkout_us(checkout, checkouts))
    finally:
        await database.dispose()
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.driver_checkout")
    parser.add_argument("--server-url", default=os.environ.get(SERVER_URL_ENV, DEFAULT_SERVER_URL))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--checkouts", type=int, default=3000, help="checkouts per round")
    args = parser.parse_args(argv)
    url = make_url(args.server_url).set(drivername="postgresql+asyncpg")
    # uvloop, as uvicorn runs the server (uvicorn[standard] installs it).
    best = uvloop.run(
        _measure(url.render_as_string(hide_password=False), args.rounds, args.checkouts)
    )
    print(
        f"pooled connection checked out and returned: this process's CPU per checkout,"
        f" best of {args.rounds} rounds of {args.checkouts}"
    )
    reference = best["engine.connect()"]
    for name, micros in best.items():
        print(f"  {name:<18} {micros:6.1f} µs   {micros / reference:4.2f}x engine.connect()")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
