"""The server-side CPU of one results write, in process, against a real PostgreSQL.

Requests go straight into the ASGI app (no HTTP parsing, no client sockets), so the
figure is this process's CPU per request: the app's Python plus asyncpg's side of the one
statement, without PostgreSQL's own work (another process). It compares, in the same run:

- ``lean``: ``POST /v1/tests/sessions/{id}/results`` as served (valid writes take the
  route's lean handler);
- ``declared``: the same writes through the declared FastAPI path (the lean handler
  switched off), what every request cost before it;
- ``echo``: ``bench/echo_app.py`` parsing and echoing the same body, the floor.

Each is the best of ``--chunks`` chunks of ``--requests`` requests (CPU time, so other
load on the machine matters less than for wall time); the chunks of the three alternate.
Sessions are spread over a fleet of 200, each request a new key, 5 ops (as in
``bench/results_load``).

Run::

    .venv/bin/python -m bench.results_inprocess
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message

from bench._server import (
    DEFAULT_SERVER_URL,
    SERVER_URL_ENV,
    new_jwt_secret,
    seed_technician,
    throwaway_database,
)
from bench.echo_app import app as echo_app

FLEET = 200


def _hlc(ms: int, counter: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z/{counter:04d}"


def write_body(i: int) -> bytes:
    ms = int(time.time() * 1000)
    asset, key = f"/assets/ext-{i % 40 + 1}", f"op-{uuid.uuid4().hex}"
    changes: list[dict[str, Any]] = [
        {"op": "set", "path": f"{asset}/pressure_kpa", "value": 800 + i % 600},
        {"op": "set", "path": f"{asset}/result", "value": "pass"},
        {"op": "set", "path": f"{asset}/inspected_at", "value": _hlc(ms, 2)},
        {"op": "set", "path": f"{asset}/note4", "value": "gauge in green, seal intact"},
        {"op": "delete", "path": f"{asset}/defect5"},
    ]
    for n, change in enumerate(changes):
        change.update(ts=_hlc(ms, n), op_id=f"{key}-{n}")
    return json.dumps({"device_id": "bench-tablet", "changes": changes}).encode()


async def _call(app: ASGIApp, path: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *headers,
        ],
        "client": ("127.0.0.1", 1),
        "server": ("bench", 80),
    }
    sent = False
    status = 0

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def _chunk(send_one: Callable[[int], Awaitable[int]], first: int, requests: int) -> float:
    """CPU per request (µs) of one chunk; every answer must be 200."""
    started = time.process_time()
    for i in range(first, first + requests):
        status = await send_one(i)
        if status != 200:
            raise SystemExit(f"request answered {status}, expected 200")
    return (time.process_time() - started) / requests * 1e6


async def app_with_writes(
    database_url: str,
) -> tuple[Any, list[uuid.UUID], Callable[[int], Awaitable[int]]]:
    """The app on ``database_url`` (created, not started) with a seeded technician, the
    fleet's session ids, and ``write(i)``: the i-th results write through the app, its
    status (also used by ``bench/results_write_parts``)."""
    from src.app.core.settings import Settings
    from src.app.main import create_app

    secret = new_jwt_secret()
    user = await seed_technician(database_url, secret)
    app = create_app(
        Settings(database_url=database_url, jwt_secret=secret, env="test", log_level="WARNING")
    )
    auth = [(b"authorization", f"Bearer {user.token}".encode())]
    sessions = [uuid.uuid4() for _ in range(FLEET)]

    async def write(i: int) -> int:
        headers = [*auth, (b"idempotency-key", uuid.uuid4().hex.encode())]
        path = f"/v1/tests/sessions/{sessions[i % FLEET]}/results"
        return await _call(app, path, write_body(i), headers)

    return app, sessions, write


async def _measure(database_url: str, chunks: int, requests: int) -> dict[str, float]:
    from src.app.results import router as results_router

    app, sessions, write = await app_with_writes(database_url)

    async def echo(i: int) -> int:
        return await _call(echo_app, f"/echo/{sessions[i % FLEET]}/results", write_body(i), [])

    lean = results_router._lean_submit

    async def declared_only(request: Any) -> None:
        return None

    # Chunks alternate between the two paths, so both see the same documents (they grow
    # as the fleet's sessions fill up) and the same background load.
    figures = {"lean": float("inf"), "declared": float("inf"), "echo": float("inf")}
    try:
        await _chunk(write, 0, FLEET)  # every session created, statements prepared
        for chunk in range(chunks):
            first = (chunk + 1) * requests
            figures["lean"] = min(figures["lean"], await _chunk(write, first, requests))
            results_router._lean_submit = declared_only
            figures["declared"] = min(figures["declared"], await _chunk(write, first, requests))
            results_router._lean_submit = lean
            figures["echo"] = min(figures["echo"], await _chunk(echo, first, requests))
    finally:
        results_router._lean_submit = lean
        await app.state.database.dispose()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.results_inprocess")
    parser.add_argument("--server-url", default=os.environ.get(SERVER_URL_ENV, DEFAULT_SERVER_URL))
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--requests", type=int, default=400, help="requests per chunk")
    args = parser.parse_args(argv)
    with throwaway_database(args.server_url) as database:
        figures = asyncio.run(_measure(database.url, args.chunks, args.requests))
    print(
        f"results write, in process against PostgreSQL: this process's CPU per request,"
        f" best of {args.chunks} chunks of {args.requests} (5 ops, a new key each,"
        f" {FLEET} sessions)"
    )
    for name, micros in figures.items():
        print(f"  {name:<12} {micros:8.0f} µs   {micros / figures['echo']:5.1f}x echo")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
