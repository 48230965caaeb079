"""The command: serve echo and the real app in turn, load each the same way, report."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from sqlalchemy import make_url

from bench._server import (
    DEFAULT_SERVER_URL,
    SERVER_URL_ENV,
    SeededUser,
    ThrowawayDatabase,
    UvicornServer,
    new_jwt_secret,
    seed_technician,
    throwaway_database,
)
from bench.results_load.load_python import run_python
from bench.results_load.load_wrk import WRK_SCRIPT, Workload, run_wrk
from bench.results_load.measurements import CpuMeter, Measurement
from bench.results_load.profiling import _finish_py_spy, _start_py_spy
from bench.results_load.report import (
    _fmt_row,
    _say,
    count_log,
    merge_counts,
    postgres_version,
    print_report,
)
from bench.results_write_parts import migrated_variants

RESULTS_APP = "src.app.main:app"
ECHO_APP = "bench.echo_app:app"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.results_load",
        description="Load benchmark of POST .../results against a real server (bench/README.md).",
    )
    parser.add_argument(
        "--server-url",
        default=os.environ.get(SERVER_URL_ENV, DEFAULT_SERVER_URL),
        help=f"PostgreSQL server for the throwaway database (env {SERVER_URL_ENV})",
    )
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before each")
    parser.add_argument(
        "--connections", default="16,64", help="connection counts to measure, each in turn"
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", default="2", help="uvicorn worker counts to try")
    parser.add_argument("--ops", type=int, default=5, help="ops per request")
    parser.add_argument("--sessions", type=int, default=1000, help="sessions of the fleet")
    parser.add_argument("--hot-sessions", type=int, default=8)
    parser.add_argument(
        "--hot-share", type=float, default=0.1, help="share of requests to hot sessions"
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("FIREMODE_BENCH_REDIS_URL"),
        help="Redis, as in production (env FIREMODE_BENCH_REDIS_URL). The results write"
        " checks revocation inside its own statement either way; other routes ask Redis",
    )
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument(
        "--py-spy",
        metavar="PATH",
        help="py-spy executable: sample the results server during each measured window",
    )
    variants = sorted(set(migrated_variants()) - {"as migrated"})
    parser.add_argument(
        "--write-variant",
        choices=variants,
        metavar="NAME",
        help="serve writes with this variant of the write function (bench/results_write_parts):"
        " a measuring device that may answer wrongly, so the targets are not judged. One of: "
        + "; ".join(variants),
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    return parser.parse_args(argv)


@dataclass
class Run:
    """Everything one invocation measured, for the report."""

    args: argparse.Namespace
    workload: Workload
    worker_counts: list[int]
    connection_counts: list[int]
    pg_version: str = "?"
    measurements: list[Measurement] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    ops_logged: int = 0
    sessions_made: int = 0


def _measure_servers(
    run: Run, database: ThrowawayDatabase, user: SeededUser, secret: str, use_wrk: bool
) -> None:
    args = run.args
    script_dir = Path(tempfile.mkdtemp(prefix="firemode-bench-"))

    def measure(
        base_url: str, mode: str, token: str, workers: int, workload: Workload, duration: float
    ) -> Measurement:
        if use_wrk:
            return run_wrk(
                base_url,
                mode=mode,
                token=token,
                workload=workload,
                duration=duration,
                workers=workers,
                script=WRK_SCRIPT,
            )
        return run_python(
            base_url, mode=mode, token=token, workload=workload, duration=duration, workers=workers
        )

    results_env = _results_env(database, secret, args.redis_url)
    echo_env: dict[str, str | None] = {"PROMETHEUS_MULTIPROC_DIR": None}
    try:
        for workers in run.worker_counts:
            for app, mode, token, env in (
                (ECHO_APP, "echo", "", echo_env),
                (RESULTS_APP, "results", user.token, results_env),
            ):
                with UvicornServer(app, workers=workers, env=env) as server:
                    for connections in run.connection_counts:
                        workload = dataclasses.replace(run.workload, connections=connections)
                        _say(
                            f"[{workers} worker(s), {connections} connections] {mode}: warm-up"
                            f" {args.warmup:.0f} s, measuring {args.duration:.0f} s ..."
                        )
                        if args.warmup > 0:
                            measure(server.base_url, mode, token, workers, workload, args.warmup)
                        meter = CpuMeter(server, database.name if mode == "results" else None)
                        spy = _start_py_spy(args, server, mode, workers, script_dir)
                        before = meter.snapshot()
                        result = measure(
                            server.base_url, mode, token, workers, workload, args.duration
                        )
                        result.cpu = CpuMeter.delta(before, meter.snapshot(), not use_wrk)
                        result.connections = connections
                        if spy is not None:
                            run.profiles.append(_finish_py_spy(spy, workers))
                        if mode == "results":
                            with contextlib.suppress(OSError):
                                result.merges = merge_counts(server.base_url)
                        if result.errors:
                            _say(f"  failures {result.statuses}; first body: {result.sample}")
                        run.measurements.append(result)
                        _say("  " + _fmt_row(result, None))
    finally:
        shutil.rmtree(script_dir, ignore_errors=True)


async def _install_write_variant(database: ThrowawayDatabase, name: str) -> None:
    """Replace the database's write function by the variant ``name``."""
    dsn = make_url(database.url).set(drivername="postgresql").render_as_string(False)
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        for statement in migrated_variants()[name]:
            await connection.execute(statement)
    finally:
        await connection.close()


def _results_env(
    database: ThrowawayDatabase, secret: str, redis_url: str | None
) -> dict[str, str | None]:
    return {
        "FIREMODE_DATABASE_URL": database.url,
        "FIREMODE_JWT_SECRET": secret,
        "FIREMODE_ENV": "production",
        "FIREMODE_LOG_LEVEL": "WARNING",
        # As in production. (The results write checks revocation in its own statement.)
        "FIREMODE_REDIS_URL": redis_url,
        "FIREMODE_REDIS_KEY_PREFIX": f"firemode-bench:{uuid.uuid4().hex[:8]}:",
        "PROMETHEUS_MULTIPROC_DIR": None,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = shutil.which("wrk")
    if args.generator == "wrk" and wrk is None:
        _say("wrk is not installed: apt-get install -y wrk (or brew install wrk)")
        return 2
    use_wrk = wrk is not None and args.generator != "python"
    if not use_wrk and args.generator == "auto":
        _say(
            "note: wrk not found (install it: apt-get install -y wrk); using the Python load"
            " generator, which competes with the server for CPU"
        )
    run = Run(
        args=args,
        workload=Workload(
            run_id=uuid.uuid4().hex[:8],
            connections=0,
            threads=args.threads,
            sessions=args.sessions,
            hot_sessions=args.hot_sessions,
            hot_share=args.hot_share,
            ops=args.ops,
        ),
        worker_counts=[int(w) for w in args.workers.split(",") if w.strip()],
        connection_counts=[int(c) for c in args.connections.split(",") if c.strip()],
    )
    secret = new_jwt_secret()
    run.load_before = os.getloadavg()
    with throwaway_database(args.server_url) as database:
        run.pg_version = postgres_version(database)
        user = asyncio.run(seed_technician(database.url, secret))
        if args.write_variant:
            asyncio.run(_install_write_variant(database, args.write_variant))
        _measure_servers(run, database, user, secret, use_wrk)
        run.ops_logged, run.sessions_made = asyncio.run(count_log(database))
    run.load_after = os.getloadavg()
    met = print_report(run)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "workload": run.workload.__dict__,
                    "write_variant": args.write_variant,
                    "measurements": [
                        dict(m.__dict__, rps=m.rps, cpu=m.cpu.__dict__ if m.cpu else None)
                        for m in run.measurements
                    ],
                    "ops_logged": run.ops_logged,
                },
                indent=2,
            )
        )
    return 0 if met else 1
