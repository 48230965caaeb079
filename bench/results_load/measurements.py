"""What one measured window gave: throughput, latency percentiles and CPU by process."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._server import UvicornServer


@dataclass
class Measurement:
    endpoint: str
    workers: int
    generator: str
    requests: int
    ok: int
    errors: int
    duration_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[str, int] = field(default_factory=dict)
    """Failing statuses (>= 400) by code, and socket errors."""
    sample: str = ""
    """The body of the first failing response, if any."""
    merges: dict[str, float] = field(default_factory=dict)
    cpu: CpuUse | None = None
    connections: int = 0

    @property
    def rps(self) -> float:
        return self.ok / self.duration_s if self.duration_s else 0.0

    def cpu_ms_per_request(self, seconds: float) -> float:
        return seconds / self.requests * 1000 if self.requests else 0.0


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds used during one measured window, by whom (Linux /proc)."""

    server_s: float
    postgres_s: float
    generator_s: float
    machine_busy_s: float
    machine_total_s: float

    @property
    def others_s(self) -> float:
        """Everything else that ran meanwhile (other users of a shared machine)."""
        return max(0.0, self.machine_busy_s - self.server_s - self.postgres_s - self.generator_s)


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime + stime


def processes_cpu_seconds(pids: list[int]) -> float:
    """CPU seconds used so far by all of ``pids`` together."""
    return sum(process_cpu_seconds(pid) for pid in pids)


def postgres_backends(database_name: str) -> list[int]:
    """Backends serving our throwaway database (their title names it)."""
    marker = f" {database_name} ".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(b"postgres: ") and marker in title:
                pids.append(int(entry.name))
    return pids


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds since boot, all CPUs."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0.0, 0.0
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values) - idle) / _CLOCK_TICKS, sum(values) / _CLOCK_TICKS


@dataclass
class CpuMeter:
    """Snapshots CPU use of the server, its PostgreSQL backends and the machine."""

    server: UvicornServer
    database_name: str | None

    def _pids(self) -> dict[str, list[int]]:
        assert self.server.process is not None
        server = [self.server.process.pid, *self.server.worker_pids()]
        backends = postgres_backends(self.database_name) if self.database_name else []
        return {"server": sorted(set(server)), "postgres": backends}

    def snapshot(self) -> dict[str, Any]:
        pids = self._pids()
        return {
            "server": {pid: process_cpu_seconds(pid) for pid in pids["server"]},
            "postgres": {pid: process_cpu_seconds(pid) for pid in pids["postgres"]},
            "machine": _machine_cpu(),
            "self": time.process_time(),
            "children": _children_cpu(),
        }

    @staticmethod
    def delta(before: dict[str, Any], after: dict[str, Any], python_generator: bool) -> CpuUse:
        def used(kind: str) -> float:
            # Backends that started during the window count from zero.
            start: dict[int, float] = before[kind]
            end: dict[int, float] = after[kind]
            return sum(cpu - start.get(pid, 0.0) for pid, cpu in end.items())

        generator = (
            after["self"] - before["self"]
            if python_generator
            else after["children"] - before["children"]
        )
        return CpuUse(
            server_s=used("server"),
            postgres_s=used("postgres"),
            generator_s=generator,
            machine_busy_s=after["machine"][0] - before["machine"][0],
            machine_total_s=after["machine"][1] - before["machine"][1],
        )


def _children_cpu() -> float:
    """CPU of finished child processes (wrk), from getrusage."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
