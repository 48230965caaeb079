"""The reference endpoint for the load benchmarks: a bare FastAPI JSON echo.

It parses the same request body as ``POST /v1/tests/sessions/{id}/results`` into a
Pydantic model and returns it, with no middleware, auth or database: the ceiling that
FastAPI + uvicorn reach on this machine. Serve it the same way as the real app::

    .venv/bin/python -m uvicorn bench.echo_app:app --workers 1 --no-access-log
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict


class EchoChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    op: Literal["set", "delete"]
    path: str
    value: Any = None
    ts: str | None = None
    op_id: str | None = None


class EchoRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device_id: str | None = None
    changes: list[EchoChange]


class Ready(BaseModel):
    status: Literal["ready"]


app = FastAPI(title="FireMode bench echo")


@app.post("/echo/{session_id}/results")
async def echo(session_id: str, body: EchoRequest) -> EchoRequest:
    return body


@app.get("/health/ready")
async def ready() -> Ready:
    return Ready(status="ready")
