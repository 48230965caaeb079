"""The wrk load generator and its Lua script (``wrk.lua`` beside this file)."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench.results_load.measurements import Measurement

WRK_SCRIPT = Path(__file__).with_name("wrk.lua")


@dataclass(frozen=True)
class Workload:
    run_id: str
    connections: int
    threads: int
    sessions: int
    hot_sessions: int
    hot_share: float
    ops: int


def run_wrk(
    base_url: str,
    *,
    mode: str,
    token: str,
    workload: Workload,
    duration: float,
    workers: int,
    script: Path,
) -> Measurement:
    command = [
        "wrk",
        f"-t{workload.threads}",
        f"-c{workload.connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        base_url,
        "--",
        mode,
        token or "-",
        workload.run_id,
        str(workload.sessions),
        str(workload.hot_sessions),
        str(workload.hot_share),
        str(workload.ops),
        uuid.uuid4().hex[:8],
    ]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    match = re.search(r"^FMJSON (\{.*\})$", completed.stdout, re.MULTILINE)
    if completed.returncode != 0 or match is None:
        raise RuntimeError(
            f"wrk failed ({completed.returncode}):\n{completed.stdout}\n{completed.stderr}"
        )
    data = json.loads(match.group(1))
    failures: dict[str, int] = {}
    status_line = re.search(r"^FMSTATUS (\{.*\})$", completed.stdout, re.MULTILINE)
    if status_line is not None:
        # One entry per wrk thread: add them up.
        for pair in status_line.group(1).strip("{}").split(","):
            if pair:
                code, count = pair.split(":")
                failures[code.strip('"')] = failures.get(code.strip('"'), 0) + int(count)
    sample = re.search(r"^FMSAMPLE (.*)$", completed.stdout, re.MULTILINE)
    socket_errors = sum(
        data[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
    )
    errors = data["status_errors"] + socket_errors
    return Measurement(
        endpoint=mode,
        workers=workers,
        generator=f"wrk ({workload.threads} threads)",
        requests=data["requests"],
        ok=data["requests"] - data["status_errors"],
        errors=errors,
        duration_s=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p95_ms=data["p95_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        statuses={**failures, "socket errors": socket_errors},
        sample=sample.group(1)[:400] if sample else "",
    )
