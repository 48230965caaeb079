"""The reference endpoint of ``evidence_load.py``: the request body streamed to a file.

No middleware, auth, database, parsing or hashing: it writes what arrives to a file in
the same directory the real server stages uploads in, fsyncs it (the real upload does
too) and deletes it. Serve it the same way as the real app::

    .venv/bin/python -m uvicorn bench.evidence_sink_app:app --workers 2 --no-access-log
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

SINK_DIR = Path(os.environ.get("FIREMODE_EVIDENCE_DIR", "var/evidence")) / "sink"


async def sink(request: Request) -> JSONResponse:
    SINK_DIR.mkdir(parents=True, exist_ok=True)
    path = SINK_DIR / f"{uuid.uuid4().hex}.part"
    size = 0
    try:
        with path.open("xb") as handle:
            async for chunk in request.stream():
                handle.write(chunk)
                size += len(chunk)
            handle.flush()
            await asyncio.to_thread(os.fsync, handle.fileno())
    finally:
        path.unlink(missing_ok=True)
    return JSONResponse({"size": size}, status_code=201)


async def ready(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ready"})


app = Starlette(routes=[Route("/sink", sink, methods=["POST"]), Route("/health/ready", ready)])
