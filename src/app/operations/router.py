"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import os
from typing import Literal

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from pydantic import BaseModel

from src.app.core.database import Database, get_database
from src.app.core.db_errors import is_database_unavailable
from src.app.core.errors import ApiError, error_responses
from src.app.core.migrations import current_revisions, head_revisions

router = APIRouter(tags=["operations"])


class HealthResponse(BaseModel):
    status: Literal["ok"]


class ReadinessResponse(BaseModel):
    status: Literal["ready"]
    database: Literal["ok"]
    schema_revision: str


@router.get("/health", response_model=HealthResponse, summary="Liveness")
async def health() -> HealthResponse:
    return HealthResponse(status="ok")


@router.get(
    "/health/ready",
    response_model=ReadinessResponse,
    summary="Readiness: the database answers and its schema is at the latest migration",
    responses=error_responses(503),
)
async def ready(database: Database = Depends(get_database)) -> ReadinessResponse:
    try:
        current = await current_revisions(database.engine)
    except Exception as exc:
        if is_database_unavailable(exc):
            raise ApiError(
                503, "The database is unreachable", headers={"Retry-After": "5"}
            ) from exc
        raise
    heads = head_revisions()
    if current != heads:
        found = ", ".join(sorted(current)) or "none"
        raise ApiError(
            503,
            f"The database schema is at revision {found}, not at the latest migration",
            headers={"Retry-After": "30"},
        )
    return ReadinessResponse(status="ready", database="ok", schema_revision=",".join(sorted(heads)))


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
)
async def metrics() -> Response:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Several workers: aggregate every worker's samples, not just this one's.
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
