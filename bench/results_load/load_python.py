"""A Python asyncio load generator, used when wrk is not installed (it costs far more CPU,
which it takes from the server it measures on a small machine)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections import Counter
from typing import Any

from bench.results_load.load_wrk import Workload
from bench.results_load.measurements import Measurement


class HttpConnection:
    """A minimal HTTP/1.1 keep-alive client: far cheaper per request than httpx, so the
    load generator steals less CPU from the server it measures."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        head.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                fields[name.strip().lower()] = value.strip()
        if fields.get("transfer-encoding", "").lower() == "chunked":
            payload = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                payload += chunk[:-2]
        else:
            payload = await self.reader.readexactly(int(fields.get("content-length", "0")))
        if fields.get("connection", "").lower() == "close":
            await self.close()
        return status, payload

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
            self.writer = self.reader = None


class DeviceClock:
    """The HLC a device keeps: wall milliseconds plus a counter for ties."""

    def __init__(self) -> None:
        self.last_ms = 0
        self.counter = 0

    def tick(self) -> str:
        now = time.time_ns() // 1_000_000
        if now > self.last_ms:
            self.last_ms, self.counter = now, 0
        else:
            self.counter += 1
            if self.counter > 9999:
                self.last_ms, self.counter = self.last_ms + 1, 0
        seconds, millis = divmod(self.last_ms, 1000)
        wall = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        return f"{wall}.{millis:03d}Z/{self.counter:04d}"


def session_id(run_id: str, index: int) -> str:
    return f"{run_id}-0000-4000-8000-{index:012d}"


class RequestFactory:
    """The same requests as the wrk script: one asset's inspection record per batch."""

    def __init__(self, mode: str, token: str, workload: Workload, number: int) -> None:
        self.mode, self.token, self.workload = mode, token, workload
        self.prefix = "/echo/" if mode == "echo" else "/v1/tests/sessions/"
        self.device = f"bench-{workload.run_id}-c{number}"
        self.clock = DeviceClock()
        self.rng = random.Random(number * 7919 + time.time_ns())
        self.seq = 0
        self.number = number
        self.nonce = uuid.uuid4().hex[:8]  # keys never repeat across invocations

    def next(self) -> tuple[str, dict[str, str], bytes]:
        w, rng = self.workload, self.rng
        self.seq += 1
        key = f"{w.run_id}-{self.nonce}-py{self.number}-{self.seq}"
        asset = f"/assets/ext-{rng.randint(1, 40)}"
        changes: list[dict[str, Any]] = []
        for i in range(1, w.ops + 1):
            ts, op_id = self.clock.tick(), f"{key}-{i}"
            kind = i % 5
            if kind == 0:
                changes.append({"op": "delete", "path": f"{asset}/defect{i}"})
            elif kind == 1:
                changes.append(
                    {"op": "set", "path": f"{asset}/pressure_kpa", "value": rng.randint(800, 1400)}
                )
            elif kind == 2:
                changes.append(
                    {"op": "set", "path": f"{asset}/result", "value": rng.choice(["pass", "fail"])}
                )
            elif kind == 3:
                changes.append({"op": "set", "path": f"{asset}/inspected_at", "value": ts})
            else:
                changes.append(
                    {
                        "op": "set",
                        "path": f"{asset}/note{i}",
                        "value": "gauge in green, seal intact",
                    }
                )
            changes[-1].update(ts=ts, op_id=op_id)
        if w.hot_sessions and rng.random() < w.hot_share:
            index = rng.randrange(w.hot_sessions)
        else:
            index = w.hot_sessions + rng.randrange(w.sessions)
        headers = {"Content-Type": "application/json", "Idempotency-Key": key}
        if self.mode == "results":
            headers["Authorization"] = f"Bearer {self.token}"
        body = json.dumps({"device_id": self.device, "changes": changes}).encode()
        return f"{self.prefix}{session_id(w.run_id, index)}/results", headers, body


async def _python_load(
    base_url: str, *, mode: str, token: str, workload: Workload, duration: float
) -> tuple[list[float], Counter[int], float, str]:
    host, port = base_url.removeprefix("http://").split(":")
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    samples: list[bytes] = []
    deadline = time.perf_counter() + duration

    async def connection(number: int) -> None:
        http = HttpConnection(host, int(port))
        factory = RequestFactory(mode, token, workload, number)
        try:
            while time.perf_counter() < deadline:
                path, headers, body = factory.next()
                started = time.perf_counter()
                try:
                    status, answer = await http.request("POST", path, headers, body)
                except (OSError, asyncio.IncompleteReadError) as exc:
                    status, answer = 599, repr(exc).encode()
                    await http.close()
                latencies.append(time.perf_counter() - started)
                statuses[status] += 1
                if status >= 400 and not samples:
                    samples.append(answer[:400])
        finally:
            await http.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection(n) for n in range(workload.connections)))
    sample = samples[0].decode(errors="replace") if samples else ""
    return latencies, statuses, time.perf_counter() - started, sample


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def run_python(
    base_url: str, *, mode: str, token: str, workload: Workload, duration: float, workers: int
) -> Measurement:
    latencies, statuses, elapsed, sample = asyncio.run(
        _python_load(base_url, mode=mode, token=token, workload=workload, duration=duration)
    )
    ordered = sorted(latencies)
    ok = sum(n for status, n in statuses.items() if 200 <= status < 400)
    return Measurement(
        endpoint=mode,
        workers=workers,
        generator="python asyncio",
        requests=len(latencies),
        ok=ok,
        errors=len(latencies) - ok,
        duration_s=elapsed,
        p50_ms=_percentile(ordered, 50) * 1000,
        p95_ms=_percentile(ordered, 95) * 1000,
        p99_ms=_percentile(ordered, 99) * 1000,
        max_ms=(ordered[-1] if ordered else 0.0) * 1000,
        statuses={str(k): v for k, v in sorted(statuses.items()) if k >= 400},
        sample=sample,
    )
