"""What the audit trail costs the results write path, at 64 connections in one organisation.

One run, one machine, one throwaway PostgreSQL database: the real app
(``src.app.main:app``, 2 uvicorn workers, everything on) is loaded with
``POST /v1/tests/sessions/{id}/results`` by ``wrk`` (64 keep-alive connections, every
request a unique ``Idempotency-Key`` and a batch of 5 ops, on 200 sessions of one
organisation), alternately **with** the audit trail (one entry per accepted batch, and
each worker's sealer linking them into the chain every second) and **without** it (the
same app with a database trigger dropping each entry, since the PostgreSQL write function
inserts it itself). Rounds alternate
(without, with, without, with, ...) so that drift of a shared machine hits both alike;
the figure is the ratio of the medians. At the end the organisation's chain is sealed
and verified, and the number of its entries is compared with the batches accepted.

    apt-get install -y wrk                 # once
    .venv/bin/python -m bench.audit        # 2 rounds x 2 modes x 15 s
    .venv/bin/python -m bench.audit --rounds 3 --duration 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._server import (
    SeededUser,
    UvicornServer,
    new_jwt_secret,
    seed_technician,
    throwaway_database,
)

TARGET_OVERHEAD = 0.10
APP = "src.app.main:app"

WRK_SCRIPT = r"""
-- bench/audit.py: args after "--" are token, run id (8 hex), sessions, ops, nonce.
local thread_count = 0
function setup(thread)
  thread_count = thread_count + 1
  thread:set("tid", thread_count)
end
failures = 0
function response(status, headers, body)
  if status ~= 200 then failures = failures + 1 end
end
local token, run_id, sessions, ops, nonce
local seq = 0
function init(args)
  token, run_id, nonce = args[1], args[2], args[5]
  sessions, ops = tonumber(args[3]), tonumber(args[4])
  math.randomseed(tid * 7919 + os.time())
end
function request()
  seq = seq + 1
  local key = run_id .. "-" .. nonce .. "-" .. tid .. "-" .. seq
  local changes = {}
  for i = 1, ops do
    changes[i] = '{"op":"set","path":"/assets/ext-' .. math.random(1, 40) .. '/r' .. i
      .. '","value":' .. math.random(800, 1400) .. ',"op_id":"' .. key .. '-' .. i .. '"}'
  end
  local body = '{"device_id":"bench-' .. tid .. '","changes":['
    .. table.concat(changes, ",") .. "]}"
  local path = string.format("/v1/tests/sessions/%s-0000-4000-8000-%012d/results", run_id,
    math.random(0, sessions - 1))
  return wrk.format("POST", path, {["Content-Type"] = "application/json",
    ["Idempotency-Key"] = key, ["Authorization"] = "Bearer " .. token}, body)
end
function done(summary, latency, requests)
  io.write(string.format('FMJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,'
    .. '"socket_errors":%d}\n', summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99), summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout))
end
"""


# The results write is one server-side function that inserts its audit entry itself, so
# "without audit" is the same app with the database dropping that insert: a BEFORE INSERT
# trigger that returns NULL (named to fire before the stamping trigger). Its own cost, a
# trivial trigger call, is counted against the audit trail: the figure errs high.
_SKIP_AUDIT_SQL = (
    "CREATE OR REPLACE FUNCTION bench_skip_audit() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RETURN NULL; END $$",
    "CREATE TRIGGER a_bench_skip_audit BEFORE INSERT ON audit_entries "
    "FOR EACH ROW EXECUTE FUNCTION bench_skip_audit()",
)
_KEEP_AUDIT_SQL = ("DROP TRIGGER IF EXISTS a_bench_skip_audit ON audit_entries",)


async def _set_audit_skipped(database_url: str, skipped: bool) -> None:
    import asyncpg

    connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        for statement in _KEEP_AUDIT_SQL + (_SKIP_AUDIT_SQL if skipped else ()):
            await connection.execute(statement)
    finally:
        await connection.close()


@dataclass
class Measurement:
    mode: str
    round: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    non_200: int


def _run_wrk(
    base_url: str, script: Path, args: list[str], *, seconds: int, connections: int
) -> dict[str, Any]:
    command = [
        "wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
        "-s", str(script), base_url, "--", *args,
    ]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    match = re.search(r"^FMJSON (.*)$", output, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk printed no summary:\n{output}")
    figures: dict[str, Any] = json.loads(match.group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    figures["non_200"] = int(non_2xx.group(1)) if non_2xx else 0
    return figures


def _measure(
    mode: str,
    round_: int,
    env: dict[str, str | None],
    user: SeededUser,
    script: Path,
    options: argparse.Namespace,
) -> Measurement:
    run_id = uuid.uuid4().hex[:8]
    database_url = env["FIREMODE_DATABASE_URL"]
    assert database_url is not None
    asyncio.run(_set_audit_skipped(database_url, skipped=mode != "with audit"))
    with UvicornServer(APP, workers=options.workers, env=env) as server:
        common = [user.token, run_id, str(options.sessions), str(options.ops)]
        _run_wrk(server.base_url, script, [*common, "warm"], seconds=3, connections=64)
        figures = _run_wrk(
            server.base_url,
            script,
            [*common, "run"],
            seconds=options.duration,
            connections=options.connections,
        )
    return Measurement(
        mode,
        round_,
        figures["requests"] / (figures["duration_us"] / 1e6),
        figures["p50_us"] / 1000,
        figures["p99_us"] / 1000,
        figures["non_200"] + figures["socket_errors"],
    )


async def _check_chain(database_url: str, organisation_id: uuid.UUID) -> dict[str, Any]:
    from sqlalchemy import func, select

    from src.app.audit.cli import verify
    from src.app.core.audit_model import AuditEntry
    from src.app.core.database import Database

    database = Database(database_url)
    try:
        (report,) = await verify(database, organisation_id)
        async with database.sessionmaker() as db:
            entries = await db.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.organisation_id == organisation_id)
            )
        return {"entries": int(entries or 0), **report.as_dict()}
    finally:
        await database.dispose()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--server-url", default=None, help="PostgreSQL server (see README)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=int, default=15, help="seconds measured per run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--ops", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench/audit.py needs wrk (apt-get install -y wrk)", file=sys.stderr)
        return 2
    measurements: list[Measurement] = []
    with throwaway_database(options.server_url) as database, tempfile.TemporaryDirectory() as tmp:
        secret = new_jwt_secret()
        user = asyncio.run(seed_technician(database.url, secret))
        script = Path(tmp) / "audit.lua"
        script.write_text(WRK_SCRIPT)
        env: dict[str, str | None] = {
            "FIREMODE_DATABASE_URL": database.url,
            "FIREMODE_JWT_SECRET": secret,
            "FIREMODE_ENV": "production",
            "FIREMODE_REDIS_URL": None,
            "FIREMODE_LOG_LEVEL": "WARNING",
            "FIREMODE_DB_POOL_SIZE": "32",
            "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        }
        started = time.monotonic()
        for round_ in range(1, options.rounds + 1):
            for mode in ("without audit", "with audit"):
                measured = _measure(mode, round_, env, user, script, options)
                measurements.append(measured)
                print(
                    f"round {round_} {mode:>13}: {measured.requests_per_second:8.1f} req/s  "
                    f"p50 {measured.p50_ms:6.1f} ms  p99 {measured.p99_ms:6.1f} ms  "
                    f"non-200 {measured.non_200}",
                    flush=True,
                )
        chain = asyncio.run(_check_chain(database.url, user.organisation_id))
    without = statistics.median(
        m.requests_per_second for m in measurements if m.mode == "without audit"
    )
    with_ = statistics.median(m.requests_per_second for m in measurements if m.mode == "with audit")
    overhead = 1 - with_ / without
    print()
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs (shared with other work)")
    print(
        f"{options.connections} connections, {options.workers} workers, one organisation, "
        f"{options.ops} ops per batch, {options.rounds} rounds x {options.duration} s per mode, "
        f"{time.monotonic() - started:.0f} s in all"
    )
    print(f"median throughput without audit: {without:8.1f} req/s")
    print(f"median throughput with audit:    {with_:8.1f} req/s")
    print(
        f"audit overhead: {overhead:+.1%} of throughput (target at most {TARGET_OVERHEAD:.0%}): "
        + ("OK" if overhead <= TARGET_OVERHEAD else "OVER TARGET")
    )
    print(
        f"chain after the run: {chain['entries']} entries, {chain['sealed']} sealed, "
        f"ok={chain['ok']}"
    )
    if options.json is not None:
        options.json.write_text(
            json.dumps(
                {
                    "measurements": [m.__dict__ for m in measurements],
                    "median_without": without,
                    "median_with": with_,
                    "overhead": overhead,
                    "chain": chain,
                },
                indent=2,
            )
        )
    return 0 if chain["ok"] and chain["entries"] == chain["sealed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
