"""Optional py-spy sampling of the results server during a measured window."""

from __future__ import annotations

import argparse
import subprocess
from collections import Counter
from pathlib import Path

from bench._server import UvicornServer


def _start_py_spy(
    args: argparse.Namespace, server: UvicornServer, mode: str, workers: int, directory: Path
) -> tuple[subprocess.Popen[bytes], Path] | None:
    """Sample the results server during the measured window (``--py-spy``)."""
    if not args.py_spy or mode != "results":
        return None
    assert server.process is not None
    output = directory / f"py-spy-{workers}.txt"
    command = [
        args.py_spy,
        "record",
        "--pid",
        str(server.process.pid),
        "--subprocesses",
        "--duration",
        str(max(1, round(args.duration))),
        "--rate",
        "100",
        "--format",
        "raw",
        "--nonblocking",
        "--output",
        str(output),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, output


def _finish_py_spy(spy: tuple[subprocess.Popen[bytes], Path], workers: int) -> str:
    process, output = spy
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if not output.exists():
        return f"py-spy ({workers} worker(s)): no profile written"
    return f"py-spy, {workers} worker(s):\n" + summarise_profile(output.read_text())


def summarise_profile(raw: str, top: int = 12) -> str:
    """Where the server's CPU went, from py-spy's collapsed stacks.

    SQLAlchemy's async layer runs statement execution in greenlets, whose stacks py-spy
    shows without the calling coroutine, so time is attributed by the innermost frame's
    package (self time).
    """
    by_package: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if any("Thread._bootstrap" in f for f in frames):
            # Thread-pool workers: idle, or running a sync dependency (negligible work).
            continue
        n = int(count)
        total += n
        innermost = frames[-1]
        location = innermost.rsplit("(", 1)[-1]
        package = "other"
        for name in (
            "sqlalchemy",
            "asyncpg",
            "fastapi",
            "starlette",
            "pydantic",
            "uvicorn",
            "src/app",
            "jwt",
            "json",
            "asyncio",
            "greenlet",
        ):
            if f"/{name}/" in location or f"/{name}." in location or location.startswith(name):
                package = name
                break
        if "Runner.run" in innermost or ("select" in innermost and "selectors" in location):
            package = "(event loop idle)"
        elif not innermost.strip():
            package = "(no Python frame: native code or waiting for the GIL)"
        elif "threading.py" in location:
            package = "threading (hand-off to the thread pool)"
        by_package[package] += n
    if not total:
        return "  (no samples)"
    lines = [f"  self time by package ({total} samples):"]
    lines += [f"    {n / total:6.1%}  {name}" for name, n in by_package.most_common(top)]
    return "\n".join(lines)
