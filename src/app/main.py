"""Application factory. ``from src.app.main import app`` gives a ready ASGI app."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi_offline import FastAPIOffline

from src.app.audit.sealer import run_sealer
from src.app.core.database import Database
from src.app.core.errors import (
    MALFORMED_BODY_DESCRIPTION,
    PROBLEM_CONTENT_TYPE,
    ErrorResponse,
    FieldError,
    install_error_handlers,
)
from src.app.core.idempotency import IDEMPOTENCY_HEADER, required_idempotency_key
from src.app.core.logging import configure_logging
from src.app.core.middleware import RequestContextMiddleware
from src.app.core.settings import Settings, get_settings
from src.app.identity.revocation import build_revocation_checker
from src.app.routers import API_ROUTERS, OPERATIONS_ROUTERS, STREAMED_BODY_PATHS

logger = logging.getLogger("firemode")

API_DESCRIPTION = """
FireMode records the routine service of fire protection systems (AS 1851).

Every error is an RFC 9457 problem document (`application/problem+json`) with the
FireMode members `transaction_id`, `error_code` (`FIRE-<status>`), `message` and
`retryable`; validation errors list each problem in `errors` with a JSON Pointer.
Every response carries `X-Transaction-ID`. Lists are cursor-paginated, newest first.
"""

DOCS_ASSETS_URL = "/docs-assets"

# Allocations between young collections (CPython's default is 700): a request allocates
# thousands of short-lived objects, most freed by reference counting before any collection.
GC_YOUNG_THRESHOLD = 20_000

# Documented on every operation; routes add their own specific statuses.
COMMON_ERROR_STATUSES = (404, 422, 500, 503)
BODY_ERROR_STATUSES = (413, 415)
AUTH_ERROR_STATUSES = (401, 403)
# 409 is an idempotent request still in flight; 429 throttling; 503 the database.
RETRY_AFTER_STATUSES = (409, 429, 503)
RETRY_AFTER_HEADER = {
    "description": "Seconds to wait before retrying",
    "schema": {"type": "integer", "minimum": 0},
}
REPLAYED_HEADER = {
    "description": "`true` when this is the stored response of an earlier request with the "
    "same Idempotency-Key (the work was not done again)",
    "schema": {"type": "string", "enum": ["true"]},
}


# Printable ASCII (a quoted structured-field string is printable ASCII too).
IDEMPOTENCY_KEY_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 257, "pattern": "^[ -~]+$"}


def operation_id(route: APIRoute) -> str:
    """The route's name: its function's name unless the route passes ``name=``. Short and
    stable, so generated clients read like the API (``create_building``)."""
    return route.name


def _uses(dependant: Dependant, call: object) -> bool:
    return dependant.call is call or any(_uses(sub, call) for sub in dependant.dependencies)


def _describe_idempotency_keys(schema: dict[str, Any], routes: list[Any]) -> None:
    """The ``Idempotency-Key`` header as the server enforces it, ``required: true`` on
    routes depending on ``required_idempotency_key`` (which declares it optional so
    that a missing key is our 400, not a generic 422)."""
    for context in iter_route_contexts(routes):
        route = context.original_route
        if not isinstance(route, APIRoute):
            continue
        required = _uses(route.dependant, required_idempotency_key)
        path_item = schema.get("paths", {}).get(context.path_format or "", {})
        for method in context.methods or ():
            for parameter in path_item.get(method.lower(), {}).get("parameters", []):
                if parameter.get("in") == "header" and parameter.get("name") == IDEMPOTENCY_HEADER:
                    parameter["required"] = required
                    parameter["schema"] = IDEMPOTENCY_KEY_SCHEMA


def _describe_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Make the problem document the schema of every error response of every route."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components["ErrorResponse"] = ErrorResponse.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    components["ErrorResponse"].pop("$defs", None)
    components["FieldError"] = FieldError.model_json_schema()
    problem = {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
    for path_item in schema.get("paths", {}).values():
        for method, operation in path_item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            statuses = set(COMMON_ERROR_STATUSES)
            if method in ("post", "put", "patch"):
                statuses.update(BODY_ERROR_STATUSES)
            takes_body = "requestBody" in operation
            if takes_body:
                statuses.add(400)
            if operation.get("security"):
                statuses.update(AUTH_ERROR_STATUSES)
            responses = operation["responses"]
            for code in list(responses):
                if code.isdigit() and int(code) >= 400:
                    statuses.add(int(code))
            for status in sorted(statuses):
                existing = responses.get(str(status), {})
                headers = dict(existing.get("headers", {}))
                if status in RETRY_AFTER_STATUSES:
                    headers["Retry-After"] = RETRY_AFTER_HEADER
                description = existing.get("description") or HTTPStatus(status).phrase
                if status == 400 and takes_body:
                    description = _with_malformed_body(description)
                responses[str(status)] = {
                    "description": description,
                    "content": problem,
                    **({"headers": headers} if headers else {}),
                }
            if method == "post":
                for code, response in responses.items():
                    if code.startswith("2"):
                        response.setdefault("headers", {})["Idempotent-Replayed"] = REPLAYED_HEADER
    return schema


def _with_malformed_body(description: str) -> str:
    if description == HTTPStatus.BAD_REQUEST.phrase:
        return MALFORMED_BODY_DESCRIPTION
    return f"{description}; or: {MALFORMED_BODY_DESCRIPTION}"


def _freeze_startup_heap() -> None:
    """Move everything alive after start-up (modules, models, routes, settings: hundreds
    of thousands of objects that live as long as the process) out of the garbage
    collector's reach, and collect the young generation less often. Full collections
    then walk little more than what requests created; they were pauses in the latency
    tail (bench/README.md: p99 at 16 connections 56-65 ms with the freeze, 163-172 ms
    without)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    database = Database(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_max_overflow,
        statement_timeout_ms=settings.db_statement_timeout_ms,
    )
    # Lazy: its Redis client (when FIREMODE_REDIS_URL is set) connects on first use.
    revocation_checker = build_revocation_checker(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Only real servers run the lifespan; each worker process configures its own logs.
        configure_logging(settings.log_level)
        if settings.uses_default_database:
            logger.warning(
                "no FIREMODE_DATABASE_URL configured: using the embedded SQLite database",
                extra={"database_url": settings.database_url},
            )
        sealer = (
            asyncio.create_task(
                run_sealer(database, interval_seconds=settings.audit_seal_interval_seconds)
            )
            if settings.audit_seal_interval_seconds > 0
            else None
        )
        _freeze_startup_heap()
        yield
        if sealer is not None:
            sealer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sealer
        await database.dispose()
        await revocation_checker.aclose()

    # /docs and /redoc load Swagger UI and ReDoc from the installed package, not a CDN:
    # sites without internet access (plant rooms, closed networks) still get the pages.
    app = FastAPIOffline(
        title="FireMode API",
        version="1.0.0",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        static_url=DOCS_ASSETS_URL,
        # No online validator badge (it would call validator.swagger.io).
        swagger_ui_parameters={"validatorUrl": None},
        # FireMode reports through /metrics and its JSON logs. FastAPI's OpenTelemetry
        # hooks stay off: deciding per request whether a provider is configured read the
        # environment on every request (about 4% of a results write's CPU).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.database = database
    app.state.revocation_checker = revocation_checker
    install_error_handlers(app)
    for router in OPERATIONS_ROUTERS:
        app.include_router(router)
    for router in API_ROUTERS:
        app.include_router(router, prefix="/v1")
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        streamed_body_paths=STREAMED_BODY_PATHS,
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            _describe_idempotency_keys(schema, app.routes)
            app.openapi_schema = _describe_errors(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


app = create_app()
