"""Figures after the run: the op log check and the printed report."""

from __future__ import annotations

import asyncio
import os
import platform
import re
import sys
import urllib.request
from typing import TYPE_CHECKING

from bench._server import ThrowawayDatabase
from bench.results_load.measurements import Measurement

if TYPE_CHECKING:
    from bench.results_load.main import Run


def merge_counts(base_url: str) -> dict[str, float]:
    """``firemode_results_merges_total`` by mode, as one worker process saw it."""
    with urllib.request.urlopen(base_url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    counts: dict[str, float] = {}
    for match in re.finditer(r'^firemode_results_merges_total\{mode="(\w+)"\} (\S+)$', text, re.M):
        counts[match.group(1)] = float(match.group(2))
    return counts


async def count_log(database: ThrowawayDatabase) -> tuple[int, int]:
    """Rows in the op log and sessions, straight from PostgreSQL."""
    import asyncpg
    from sqlalchemy import make_url

    dsn = make_url(database.url).set(drivername="postgresql").render_as_string(False)
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        ops = await connection.fetchval("SELECT count(*) FROM result_ops")
        sessions = await connection.fetchval("SELECT count(*) FROM test_sessions")
        return int(ops), int(sessions)
    finally:
        await connection.close()


def postgres_version(database: ThrowawayDatabase) -> str:
    async def fetch() -> str:
        import asyncpg

        connection = await asyncpg.connect(database.admin_dsn, timeout=10)
        try:
            return str(await connection.fetchval("SHOW server_version"))
        finally:
            await connection.close()

    return asyncio.run(fetch())


def _fmt_row(m: Measurement, echo: Measurement | None) -> str:
    ratio = f"{m.rps / echo.rps * 100:6.1f}%" if echo and echo.rps and m is not echo else "      -"
    return (
        f"{m.workers:>7} {m.connections:>5}  {m.endpoint:<8} {m.rps:>9.1f} {m.p50_ms:>8.1f}"
        f" {m.p95_ms:>8.1f} {m.p99_ms:>8.1f} {m.max_ms:>8.1f} {m.ok:>8} {m.errors:>6}  {ratio}"
    )


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


P95_TARGET_MS = 30.0
P95_TARGET_CONNECTIONS = 16
RATIO_TARGET = 0.15
RATIO_TARGET_CONNECTIONS = 64


def _verdicts(run: Run) -> tuple[list[str], bool]:
    """The targets: p95 < 30 ms at 16 connections, >= 15% of echo at 64."""
    verdicts: list[str] = []
    met = True
    for workers in run.worker_counts:
        for connections in run.connection_counts:
            pair = {
                m.endpoint: m
                for m in run.measurements
                if m.workers == workers and m.connections == connections
            }
            echo, results = pair.get("echo"), pair.get("results")
            if echo is None or results is None:
                continue
            ratio = results.rps / echo.rps if echo.rps else 0.0
            parts = [
                f"{workers} worker(s), {connections} connections: {results.rps:.0f} req/s,"
                f" {ratio:.1%} of echo, p95 {results.p95_ms:.1f} ms, errors {results.errors}"
            ]
            met = met and results.errors == 0
            if connections == P95_TARGET_CONNECTIONS:
                ok = results.p95_ms < P95_TARGET_MS
                met = met and ok
                parts.append(f"p95 {'PASS' if ok else 'FAIL'} (target < {P95_TARGET_MS:.0f} ms)")
            if connections == RATIO_TARGET_CONNECTIONS:
                ok = ratio >= RATIO_TARGET
                met = met and ok
                parts.append(
                    f"throughput {'PASS' if ok else 'FAIL'} (target >= {RATIO_TARGET:.0%} of echo)"
                )
            verdicts.append("; ".join(parts))
    return verdicts, met


def print_report(run: Run) -> bool:
    """Print the figures; True when every target was met."""
    args, workload, measurements = run.args, run.workload, run.measurements
    generator = measurements[0].generator if measurements else "-"
    print()
    print("FireMode results-sync load benchmark")
    print(
        f"machine: {os.cpu_count()} CPUs, {platform.platform()},"
        f" Python {platform.python_version()}, PostgreSQL {run.pg_version}"
        " (server, PostgreSQL and load generator share the CPUs)"
    )
    print(
        f"load generator: {generator}; connections {run.connection_counts};"
        f" {args.duration:.0f} s per measurement after {args.warmup:.0f} s warm-up"
    )
    print(
        f"request: POST /v1/tests/sessions/{{id}}/results, {workload.ops} ops, unique"
        f" Idempotency-Key, real JWT + revocation check (in the write statement;"
        f" Redis {'configured' if args.redis_url else 'not configured'}), {workload.sessions}"
        f" sessions + {workload.hot_sessions} hot ones taking {workload.hot_share:.0%}"
    )
    print(
        "reference: POST /echo/{id}/results of bench/echo_app.py (same body, parsed and"
        " echoed), served by uvicorn the same way, in the same run"
    )
    if args.write_variant:
        print(
            f"write function: variant {args.write_variant!r} of bench/results_write_parts, a"
            " measuring device that may answer wrongly: targets not judged"
        )
    print()
    print(
        "workers conns  endpoint     req/s   p50 ms   p95 ms   p99 ms   max ms       ok errors"
        "  % of echo"
    )
    for workers in run.worker_counts:
        for connections in run.connection_counts:
            pair = {
                m.endpoint: m
                for m in measurements
                if m.workers == workers and m.connections == connections
            }
            for m in (pair.get("echo"), pair.get("results")):
                if m is not None:
                    print(_fmt_row(m, pair.get("echo")))
    print()
    print(
        "CPU per request in the measured window (core-ms; 'others' = processes outside this"
        " benchmark, e.g. other users of a shared machine):"
    )
    print("workers conns  endpoint    server  postgres  generator   machine busy   others")
    for m in measurements:
        if m.cpu is None:
            continue
        busy = m.cpu.machine_busy_s / m.cpu.machine_total_s if m.cpu.machine_total_s else 0.0
        print(
            f"{m.workers:>7} {m.connections:>5}  {m.endpoint:<8}"
            f" {m.cpu_ms_per_request(m.cpu.server_s):>9.2f}"
            f" {m.cpu_ms_per_request(m.cpu.postgres_s):>9.2f}"
            f" {m.cpu_ms_per_request(m.cpu.generator_s):>10.2f} {busy:>14.0%}"
            f" {m.cpu_ms_per_request(m.cpu.others_s):>8.2f}"
        )
    print(
        f"load average before/after: {' '.join(f'{x:.2f}' for x in run.load_before)}"
        f" / {' '.join(f'{x:.2f}' for x in run.load_after)}"
    )
    print()
    verdicts, met = _verdicts(run)
    if args.write_variant:
        verdicts = [f"write function variant {args.write_variant!r}: targets not judged"]
        met = False
    for verdict in verdicts:
        print(verdict)
    for profile in run.profiles:
        print(profile)
    acknowledged = sum(m.ok for m in measurements if m.endpoint == "results") * workload.ops
    print(
        f"op log check: {run.ops_logged} ops in result_ops across {run.sessions_made} sessions;"
        f" {acknowledged} acknowledged in the measured windows (the rest: warm-ups and"
        " requests in flight when a window closed)"
    )
    return met
