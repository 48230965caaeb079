"""How long one sealing transaction holds a server's event loop, by batch size.

Each server process seals the audit chain on its own event loop (``audit/sealer.py``,
``run_sealer``), between requests. A request in flight on that process waits out the
Python work of a sealing transaction (reading the entries, hashing each link, building
the insert of the seals): this prints that work's CPU per transaction, the longest and
the median, for a second's worth of a busy server's entries sealed in batches of the
server's size (``SERVER_BATCH``) and in one batch (``DEFAULT_BATCH``, what the server
used before). Batches alternate on fresh entries each round, on one throwaway
PostgreSQL database.

Run::

    .venv/bin/python -m bench.audit_seal_pass
    .venv/bin/python -m bench.audit_seal_pass --entries 1600 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid

from bench._server import (
    DEFAULT_SERVER_URL,
    SERVER_URL_ENV,
    new_jwt_secret,
    seed_technician,
    throwaway_database,
)
from src.app.audit.sealer import DEFAULT_BATCH, SERVER_BATCH, seal_pending
from src.app.core import audit
from src.app.core.database import Database


async def _write_entries(database: Database, organisation_id: uuid.UUID, count: int) -> None:
    """``count`` entries, each in its own transaction as results writes make them (the
    sealer never splits one transaction's entries across two batches)."""
    actor = audit.Actor.user(uuid.uuid4())
    async with database.engine.connect() as conn:
        for i in range(count):
            values = audit.entry_values(
                organisation_id=organisation_id,
                actor=actor,
                action="results.accepted",
                subject_type="test_session",
                subject_id=uuid.uuid4(),
                payload={"op_ids": [f"op-{i}-{k}" for k in range(5)], "applied": 5},
            )
            await conn.execute(audit.ENTRY_INSERT, values)
            await conn.commit()


async def _seal_in_batches(database: Database, batch: int) -> list[float]:
    """CPU (ms) of each sealing transaction until nothing is left to seal."""
    costs: list[float] = []
    while True:
        async with database.sessionmaker() as db:
            started = time.process_time()
            sealed = await seal_pending(db, limit=batch)
            costs.append((time.process_time() - started) * 1000)
        if sealed < batch:
            return costs


async def _measure(url: str, entries: int, rounds: int) -> dict[int, list[float]]:
    organisation_id = (await seed_technician(url, new_jwt_secret())).organisation_id
    database = Database(url)
    costs: dict[int, list[float]] = {SERVER_BATCH: [], DEFAULT_BATCH: []}
    try:
        await _write_entries(database, organisation_id, 50)
        await _seal_in_batches(database, DEFAULT_BATCH)  # the chain exists; warm
        for _ in range(rounds):
            for batch in costs:
                await _write_entries(database, organisation_id, entries)
                costs[batch].extend(c for c in await _seal_in_batches(database, batch) if c)
    finally:
        await database.dispose()
    return costs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.audit_seal_pass")
    parser.add_argument("--server-url", default=os.environ.get(SERVER_URL_ENV, DEFAULT_SERVER_URL))
    parser.add_argument(
        "--entries", type=int, default=800, help="entries to seal per round (a second's worth)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with throwaway_database(args.server_url) as database:
        costs = asyncio.run(_measure(database.url, args.entries, args.rounds))
    print(
        f"sealing {args.entries} entries per round, {args.rounds} rounds: this process's CPU"
        " per sealing transaction (what a request in flight on the process waits out)"
    )
    for batch, values in costs.items():
        print(
            f"  batch {batch:>5}: {len(values):3d} transactions, longest {max(values):6.1f} ms,"
            f" median {statistics.median(values):6.1f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
