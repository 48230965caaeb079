"""Evidence upload load: 1 MiB uploads at 16 connections, and a 200 MiB upload's memory.

Against a real uvicorn server (2 workers) on a throwaway PostgreSQL database:

1. ``bench/evidence_sink_app.py`` (the request body streamed to a file, nothing else) is
   loaded with the identical multipart bodies: the reference.
2. ``POST /v1/evidence`` is loaded the same way: every upload is a distinct 1 MiB JPEG
   (so every one is a new blob and a new record), with its own Idempotency-Key.
3. With the cap raised to 256 MiB, one 200 MiB upload is streamed to the real server
   while the resident memory (VmRSS) of its workers is sampled every 10 ms.

Run from the project root: ``.venv/bin/python -m bench.evidence_load`` (about 1 min).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench._server import (
    SeededUser,
    UvicornServer,
    new_jwt_secret,
    seed_technician,
    throwaway_database,
)

MIB = 1024 * 1024
JPEG_PREFIX = b"\xff\xd8\xff\xe0"


@dataclass
class LoadResult:
    name: str
    uploads: int
    seconds: float
    latencies_ms: list[float]

    @property
    def mib_per_second(self) -> float:
        return self.uploads / self.seconds  # each upload is 1 MiB of file

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    def row(self) -> dict[str, Any]:
        return {
            "target": self.name,
            "uploads": self.uploads,
            "MiB/s": round(self.mib_per_second, 1),
            "p50 ms": round(statistics.median(self.latencies_ms), 1),
            "p95 ms": round(self.percentile(0.95), 1),
            "p99 ms": round(self.percentile(0.99), 1),
        }


class Bodies:
    """Distinct 1 MiB JPEG-looking files, cheap to make: one random block shared by all,
    a unique tail each; the hash of the shared block is computed once."""

    def __init__(self, session_id: uuid.UUID) -> None:
        self.session_id = session_id
        self.block = JPEG_PREFIX + os.urandom(MIB - len(JPEG_PREFIX) - 16)
        self._digest = hashlib.sha256(self.block)

    def make(self, number: int) -> tuple[bytes, str]:
        tail = number.to_bytes(16, "big")
        digest = self._digest.copy()
        digest.update(tail)
        sha256 = digest.hexdigest()
        return self.form([self.block, tail], sha256), "multipart/form-data; boundary=" + _BOUNDARY

    def form(self, file_parts: list[bytes], sha256: str) -> bytes:
        return b"".join([_head(self.session_id, sha256), *file_parts, _TAIL])


_BOUNDARY = "firemode-bench-" + uuid.uuid4().hex
_TAIL = f"\r\n--{_BOUNDARY}--\r\n".encode()


def _head(session_id: uuid.UUID, sha256: str) -> bytes:
    fields = {"session_id": str(session_id), "kind": "photo", "sha256": sha256}
    parts = [
        f'--{_BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    parts.append(
        f"--{_BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="photo.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    )
    return "".join(parts).encode()


async def load(
    name: str,
    base_url: str,
    path: str,
    bodies: Bodies,
    *,
    connections: int,
    uploads: int,
    first_number: int,
    headers: dict[str, str],
    expected_status: int,
) -> LoadResult:
    """``uploads`` uploads over ``connections`` keep-alive connections, closed loop."""
    counter = iter(range(first_number, first_number + uploads))
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)

    async def worker(client: httpx.AsyncClient) -> None:
        for number in counter:
            body, content_type = bodies.make(number)
            request_headers = {
                **headers,
                "Content-Type": content_type,
                "Idempotency-Key": f"bench-{number}",
            }
            started = time.perf_counter()
            response = await client.post(path, content=body, headers=request_headers)
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code != expected_status:
                raise RuntimeError(f"{name}: {response.status_code} {response.text[:300]}")

    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(connections)))
        seconds = time.perf_counter() - started
    return LoadResult(name, uploads, seconds, latencies)


async def seed_session(database_url: str, user: SeededUser) -> uuid.UUID:
    from src.app.buildings.models import Building
    from src.app.core.database import Database
    from src.app.sessions.models import TestSession

    database = Database(database_url)
    try:
        async with database.sessionmaker() as db:
            building = Building(
                organisation_id=user.organisation_id,
                name="Bench tower",
                address="1 Bench St",
                building_type="office",
            )
            db.add(building)
            await db.flush()
            session = TestSession(
                organisation_id=user.organisation_id,
                building_id=building.id,
                session_name="Bench",
                created_by=user.user_id,
            )
            db.add(session)
            await db.commit()
            return session.id
    finally:
        await database.dispose()


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class RssSampler:
    """Samples the resident set size of some processes every 10 ms, in a thread."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.peak = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in self.pids:
                self.peak[pid] = max(self.peak[pid], _rss_kib(pid))
            time.sleep(0.01)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def big_file_chunks(size: int, seed: bytes) -> Iterator[bytes]:
    """``size`` bytes of a JPEG-looking file, made again identically on every call."""
    block = JPEG_PREFIX + hashlib.sha256(seed).digest() * ((MIB - 4) // 32 + 1)
    block = block[:MIB]
    sent = 0
    number = 0
    while sent < size:
        chunk = block[: min(MIB, size - sent)]
        chunk = chunk[:-8] + number.to_bytes(8, "big") if len(chunk) >= 8 else chunk
        number += 1
        sent += len(chunk)
        yield chunk


async def big_upload(
    server: UvicornServer, user: SeededUser, session_id: uuid.UUID, size: int
) -> dict[str, Any]:
    digest = hashlib.sha256()
    for chunk in big_file_chunks(size, b"big"):
        digest.update(chunk)
    head = _head(session_id, digest.hexdigest())

    async def body() -> AsyncIterator[bytes]:
        yield head
        for chunk in big_file_chunks(size, b"big"):
            yield chunk
        yield _TAIL

    pids = server.worker_pids()
    idle = {pid: _rss_kib(pid) for pid in pids}
    with RssSampler(pids) as sampler:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=300) as client:
            started = time.perf_counter()
            response = await client.post(
                "/v1/evidence",
                content=body(),
                headers={
                    **user.headers,
                    "Idempotency-Key": "bench-big",
                    "Content-Type": "multipart/form-data; boundary=" + _BOUNDARY,
                    "Content-Length": str(len(head) + size + len(_TAIL)),
                },
            )
            seconds = time.perf_counter() - started
    if response.status_code != 201:
        raise RuntimeError(f"big upload: {response.status_code} {response.text[:300]}")
    growth = {pid: (sampler.peak[pid] - idle[pid]) / 1024 for pid in pids}
    worker = max(growth, key=lambda pid: growth[pid])
    return {
        "size MiB": size // MIB,
        "seconds": round(seconds, 2),
        "idle RSS MiB (busiest worker)": round(idle[worker] / 1024, 1),
        "peak RSS MiB (busiest worker)": round(sampler.peak[worker] / 1024, 1),
        "growth MiB": round(growth[worker], 1),
        "target growth MiB": 32,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--uploads", type=int, default=320, help="measured uploads per target")
    parser.add_argument("--warmup", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--big-mib", type=int, default=200)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    secret = new_jwt_secret()
    with throwaway_database() as database, tempfile.TemporaryDirectory() as evidence_dir:
        user = asyncio.run(seed_technician(database.url, secret))
        session_id = asyncio.run(seed_session(database.url, user))
        bodies = Bodies(session_id)
        env = {
            "FIREMODE_DATABASE_URL": database.url,
            "FIREMODE_JWT_SECRET": secret,
            "FIREMODE_ENV": "production",
            "FIREMODE_LOG_LEVEL": "WARNING",
            "FIREMODE_EVIDENCE_DIR": evidence_dir,
            "FIREMODE_REDIS_URL": None,
        }
        common = {"connections": args.connections, "headers": user.headers}
        results: list[LoadResult] = []
        with UvicornServer("bench.evidence_sink_app:app", workers=args.workers, env=env) as sink:
            asyncio.run(
                load(
                    "warm-up",
                    sink.base_url,
                    "/sink",
                    bodies,
                    uploads=args.warmup,
                    first_number=0,
                    expected_status=201,
                    **common,
                )
            )
            results.append(
                asyncio.run(
                    load(
                        "bare sink",
                        sink.base_url,
                        "/sink",
                        bodies,
                        uploads=args.uploads,
                        first_number=0,
                        expected_status=201,
                        **common,
                    )
                )
            )
        with UvicornServer("src.app.main:app", workers=args.workers, env=env) as server:
            asyncio.run(
                load(
                    "warm-up",
                    server.base_url,
                    "/v1/evidence",
                    bodies,
                    uploads=args.warmup,
                    first_number=10**6,
                    expected_status=201,
                    **common,
                )
            )
            results.append(
                asyncio.run(
                    load(
                        "POST /v1/evidence",
                        server.base_url,
                        "/v1/evidence",
                        bodies,
                        uploads=args.uploads,
                        first_number=2 * 10**6,
                        expected_status=201,
                        **common,
                    )
                )
            )
        big_env = {**env, "FIREMODE_MAX_EVIDENCE_BYTES": str(256 * MIB)}
        with UvicornServer("src.app.main:app", workers=args.workers, env=big_env) as server:
            memory = asyncio.run(big_upload(server, user, session_id, args.big_mib * MIB))

    sink_result, evidence_result = results
    report = {
        "machine": f"{os.cpu_count()} cores, shared with other work during the run",
        "workers": args.workers,
        "connections": args.connections,
        "load": [r.row() for r in results],
        "evidence / sink throughput": round(
            evidence_result.mib_per_second / sink_result.mib_per_second, 3
        ),
        "p95 target ms": 300,
        "memory during one big upload": memory,
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
