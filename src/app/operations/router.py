"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import hmac
import os
from typing import Literal

from fastapi import APIRouter, Depends, Request, Response
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


def _require_metrics_token(request: Request) -> None:
    """With ``FIREMODE_METRICS_TOKEN`` set, /metrics wants ``Authorization: Bearer <it>``."""
    expected = request.app.state.settings.metrics_token
    if expected is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), expected.get_secret_value().encode()
    ):
        raise ApiError(
            401,
            "The metrics need Authorization: Bearer <FIREMODE_METRICS_TOKEN>",
            headers={"WWW-Authenticate": 'Bearer realm="firemode-metrics"'},
        )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    description="Open by default (bind the port privately), or, with "
    "`FIREMODE_METRICS_TOKEN` set, only with `Authorization: Bearer <that token>` (401 "
    "otherwise).",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"},
        **error_responses(401),
    },
    dependencies=[Depends(_require_metrics_token)],
)
async def metrics() -> Response:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Several workers: aggregate every worker's samples, not just this one's.
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
