"""What a results write costs PostgreSQL per transaction, and what sharing one would save.

The write statement of the PostgreSQL path (``src/app/results/service.py``: the
revocation check and ``firemode_results_write``) is sent straight from this process with
asyncpg, with the parameters the server would send for the same writes (5 ops, a new key
each, a fleet of 200 sessions, the document in the answer, as ``bench/results_inprocess``).
The writes are sent in groups of ``N`` that share one transaction and one round trip
(asyncpg's ``fetchmany``: one Sync, so one implicit transaction):

- ``N = 1`` is what the server does: one write, one statement, one commit;
- larger ``N`` shows how much of PostgreSQL's CPU per write is per transaction (the round
  trip, the statement's bind, the commit and its WAL flush) and could be shared by a
  server that grouped concurrent requests' writes; what stays is the write itself.

Each round measures every group size in turn, so the machine's drift hits all alike; the
figures are the CPU of the database's backends (Linux ``/proc``, 10 ms ticks) and of this
process (sending and decoding the answers; the parameters are built before the clock
starts), per write. Every write must answer ``ok``, and at the end the op log must hold
every op sent.

Run::

    .venv/bin/python -m bench.results_write_grouped
    .venv/bin/python -m bench.results_write_grouped --rounds 5 --writes 800 --groups 1,8,32
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import uvloop
from sqlalchemy import make_url

from bench._server import (
    DEFAULT_SERVER_URL,
    SERVER_URL_ENV,
    new_jwt_secret,
    seed_technician,
    throwaway_database,
)
from bench.results_inprocess import FLEET, write_body
from bench.results_load.measurements import postgres_backends, processes_cpu_seconds
from bench.results_write_parts import print_cpu_table
from src.app.core.idempotency.fingerprint import request_fingerprint
from src.app.core.idempotency.store import advisory_lock_id
from src.app.core.settings import Settings
from src.app.results.hlc import HybridLogicalClock, wall_clock_ms
from src.app.results.ingest import prepare_changes, stamp
from src.app.results.schemas import ResultsSubmission
from src.app.results.service import _WRITE, response_headers

DEVICE = "bench-tablet"
OPS_PER_WRITE = 5  # bench.results_inprocess.write_body


class Writes:
    """The parameters of the i-th write, as the server builds them."""

    def __init__(self, organisation_id: uuid.UUID, user_id: uuid.UUID) -> None:
        self.organisation_id = organisation_id
        self.user_id = user_id
        self.sessions = [uuid.uuid4() for _ in range(FLEET)]
        self.settings = Settings(jwt_secret=new_jwt_secret(), env="test")
        self.clock = HybridLogicalClock()
        self.jti = str(uuid.uuid4())
        self.issued_at = datetime.now(UTC) - timedelta(seconds=1)
        self.headers = json.dumps(response_headers(False))
        self.audit = json.dumps(
            {
                "actor_type": "user",
                "actor_id": str(user_id),
                "transaction_id": str(uuid.uuid4()),
                "device_id": DEVICE,
            }
        )

    def params(self, i: int) -> tuple[Any, ...]:
        session = self.sessions[i % FLEET]
        body = write_body(i)
        changes = ResultsSubmission.model_validate_json(body).changes
        skew_ms = self.settings.max_clock_skew_seconds * 1000
        prepared = prepare_changes(changes, now_ms=wall_clock_ms(), max_skew_ms=skew_ms)
        ops = stamp(prepared, device_id=DEVICE, clock=self.clock, last_applied_ts=None)
        payload = [
            [op.op, op.path, op.value, op.ts, op.device_id, op.op_id, c.value_bytes, False]
            for op, c in zip(ops, prepared, strict=True)
        ]
        key, path = uuid.uuid4().hex, f"/v1/tests/sessions/{session}/results"
        scope = (str(self.organisation_id), str(self.user_id), "POST", path, key)
        now = datetime.now(UTC)
        return (
            self.organisation_id,
            self.user_id,
            session,
            key,
            "POST",
            path,
            request_fingerprint(body),
            advisory_lock_id(scope),
            self.headers,
            True,
            now + timedelta(seconds=self.settings.idempotency_ttl_seconds),
            now,
            json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
            str(self.clock.tick()),
            self.settings.max_session_ops,
            self.settings.max_document_bytes,
            self.settings.max_session_bytes,
            self.audit,
            self.jti,
            self.issued_at,
        )


async def _send(connection: asyncpg.Connection, batch: list[tuple[Any, ...]]) -> None:
    """One transaction, one round trip; every write must answer ``ok``."""
    if len(batch) == 1:
        rows = [await connection.fetchrow(_WRITE, *batch[0])]
    else:
        rows = await connection.fetchmany(_WRITE, batch)
    outcomes = [None if row is None else row["o_outcome"] for row in rows]
    if len(rows) != len(batch) or set(outcomes) != {"ok"}:
        raise SystemExit(f"writes answered {outcomes}, expected {len(batch)} x 'ok'")


async def _measure(
    url: str, groups: Sequence[int], rounds: int, writes_per_round: int
) -> dict[str, list[tuple[float, float]]]:
    user = await seed_technician(url, new_jwt_secret())
    writes = Writes(user.organisation_id, user.user_id)
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    database_name = str(make_url(url).database)
    connection = await asyncpg.connect(dsn)
    figures: dict[str, list[tuple[float, float]]] = {str(group): [] for group in groups}
    sent = 0
    try:
        for _ in range(2 * FLEET):  # every session created, the statement prepared
            await _send(connection, [writes.params(sent)])
            sent += 1
        pids = postgres_backends(database_name)
        for _round in range(rounds):
            for group in groups:
                count = writes_per_round - writes_per_round % group
                batches = [
                    [writes.params(i) for i in range(first, first + group)]
                    for first in range(sent, sent + count, group)
                ]
                sent += count
                database_before = processes_cpu_seconds(pids)
                process_before = time.process_time()
                for batch in batches:
                    await _send(connection, batch)
                database_s = processes_cpu_seconds(pids) - database_before
                process_s = time.process_time() - process_before
                figures[str(group)].append((database_s / count * 1e3, process_s / count * 1e3))
        logged = await connection.fetchval("SELECT count(*) FROM result_ops")
        if logged != OPS_PER_WRITE * sent:
            raise SystemExit(f"{logged} ops in the log, expected {OPS_PER_WRITE * sent}")
    finally:
        await connection.close()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.results_write_grouped")
    parser.add_argument("--server-url", default=os.environ.get(SERVER_URL_ENV, DEFAULT_SERVER_URL))
    parser.add_argument("--groups", default="1,4,16", help="writes per transaction, each in turn")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--writes", type=int, default=640, help="writes per group size per round")
    args = parser.parse_args(argv)
    groups = [int(g) for g in args.groups.split(",") if g.strip()]
    with throwaway_database(args.server_url) as database:
        figures = uvloop.run(_measure(database.url, groups, args.rounds, args.writes))
    print(
        f"results write statement sent straight to PostgreSQL, N writes per transaction:"
        f" CPU per write, median (min) of {args.rounds} rounds of about {args.writes}"
        f" (5 ops, a new key each, {FLEET} sessions, the document in the answer)"
    )
    print_cpu_table(figures, "N", str(groups[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
