"""The one error mechanism: every error leaves the service as this problem document.

The format is described for clients in docs/api/errors.md.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from src.app.core.db_errors import unavailable_reason
from src.app.core.request_context import current_transaction_id

logger = logging.getLogger("firemode.http")

PROBLEM_CONTENT_TYPE = "application/problem+json"
ERROR_TYPE_BASE = "https://firemode.dev/errors/"
RETRYABLE_STATUSES = frozenset({404, 408, 429, 500, 502, 503, 504})
# A body that cannot be parsed at all is a 400 whose detail starts with this.
MALFORMED_BODY_DETAIL_PREFIX = "The request body is"
MALFORMED_BODY_DESCRIPTION = (
    "Malformed body: not UTF-8, not JSON, or nested deeper than 64 levels "
    "(a body that is JSON but breaks the schema is a 422)"
)


class FieldError(BaseModel):
    """One validation problem. ``pointer`` is a JSON Pointer into the body; query
    parameters and headers are named by ``parameter`` and ``header`` instead."""

    model_config = ConfigDict(extra="forbid")

    pointer: str | None = None
    parameter: str | None = None
    header: str | None = None
    detail: str


class ErrorResponse(BaseModel):
    """RFC 9457 problem details with the FireMode extension members."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "type": "https://firemode.dev/errors/FIRE-404",
                "title": "Not Found",
                "status": 404,
                "detail": "Test session 3f0c6b8e-... does not exist",
                "instance": "urn:uuid:0b0c9f5e-6a4b-4a53-9b7e-0a1f3d3c9e11",
                "transaction_id": "0b0c9f5e-6a4b-4a53-9b7e-0a1f3d3c9e11",
                "error_code": "FIRE-404",
                "message": "Test session 3f0c6b8e-... does not exist",
                "retryable": True,
            }
        },
    )

    type: str
    title: str
    status: int
    detail: str
    instance: str
    transaction_id: str
    error_code: str = Field(pattern=r"^FIRE-\d{3}$")
    message: str
    retryable: bool
    errors: list[FieldError] | None = None


class ApiError(Exception):
    """Raise this from anywhere in request handling to answer with a FireMode error."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        retryable: bool | None = None,
        errors: Sequence[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.retryable = retryable
        self.errors = list(errors) if errors is not None else None
        self.headers = headers or {}


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} does not exist")


def problem_body(
    status: int,
    detail: str,
    *,
    retryable: bool | None = None,
    errors: Sequence[FieldError] | None = None,
    transaction_id: str | None = None,
) -> dict[str, Any]:
    transaction_id = transaction_id or current_transaction_id()
    code = f"FIRE-{status}"
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body: dict[str, Any] = {
        "type": ERROR_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": f"urn:uuid:{transaction_id}",
        "transaction_id": transaction_id,
        "error_code": code,
        "message": detail,
        "retryable": status in RETRYABLE_STATUSES if retryable is None else retryable,
    }
    if errors:
        body["errors"] = [e.model_dump(exclude_none=True) for e in errors]
    return body


def problem_response(
    status: int,
    detail: str,
    *,
    retryable: bool | None = None,
    errors: Sequence[FieldError] | None = None,
    headers: dict[str, str] | None = None,
    transaction_id: str | None = None,
) -> Response:
    body = problem_body(
        status, detail, retryable=retryable, errors=errors, transaction_id=transaction_id
    )
    all_headers = dict(headers or {})
    if status in (429, 503):
        all_headers.setdefault("Retry-After", "1" if status == 503 else "60")
    return Response(
        content=json.dumps(body, separators=(",", ":")).encode(),
        status_code=status,
        headers=all_headers,
        media_type=PROBLEM_CONTENT_TYPE,
    )


def _validation_errors(exc: RequestValidationError) -> list[FieldError]:
    problems: list[FieldError] = []
    for item in exc.errors():
        loc = list(item.get("loc", ()))
        where = loc[0] if loc else "body"
        rest = [str(part).replace("~", "~0").replace("/", "~1") for part in loc[1:]]
        message = str(item.get("msg", "is invalid")).removeprefix("Value error, ")
        if where == "body":
            problems.append(
                FieldError(pointer="/" + "/".join(rest) if rest else "", detail=message)
            )
        elif where == "header":
            problems.append(FieldError(header=rest[0] if rest else "", detail=message))
        else:
            problems.append(FieldError(parameter=rest[0] if rest else str(where), detail=message))
    return problems


async def _handle_api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    if exc.status == 503 and exc.__cause__ is not None:
        reason = unavailable_reason(exc.__cause__)
        if reason is not None:  # the one log line of an outage's request (see middleware)
            logger.warning(
                "database unavailable",
                extra={"reason": reason, "error": type(exc.__cause__).__name__},
            )
    return problem_response(
        exc.status, exc.detail, retryable=exc.retryable, errors=exc.errors, headers=exc.headers
    )


async def _handle_validation(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    for item in exc.errors():
        if item.get("type") == "json_invalid":
            # The body is not JSON at all: nothing to point into (400, not 422).
            error = (item.get("ctx") or {}).get("error", "invalid JSON")
            position = item.get("loc", ("body", None))[-1]
            where = f" at character {position}" if isinstance(position, int) else ""
            return problem_response(
                400, f"{MALFORMED_BODY_DETAIL_PREFIX} not valid JSON: {error}{where}"
            )
    problems = _validation_errors(exc)
    detail = "The request is invalid: " + "; ".join(
        f"{p.pointer or p.parameter or p.header or '/'}: {p.detail}" for p in problems[:5]
    )
    return problem_response(422, detail, errors=problems)


_HTTP_DETAILS = {
    404: "No resource exists at this path",
    405: "This method is not allowed on this path",
}
# FastAPI's answer when parsing the body raised something other than a JSON error.
_FASTAPI_BODY_ERROR = "There was an error parsing the body"


async def _handle_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    detail = exc.detail if isinstance(exc.detail, str) else None
    if status in _HTTP_DETAILS and detail == HTTPStatus(status).phrase:
        detail = _HTTP_DETAILS[status]
    if status == 400 and detail == _FASTAPI_BODY_ERROR:
        detail = f"{MALFORMED_BODY_DETAIL_PREFIX} not valid JSON"
    if status == 404 and detail == _HTTP_DETAILS[404]:
        detail = f"No resource exists at {request.url.path}"
    headers = dict(exc.headers or {})
    return problem_response(status, detail or HTTPStatus(status).phrase, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _handle_api_error)
    app.add_exception_handler(RequestValidationError, _handle_validation)
    app.add_exception_handler(StarletteHTTPException, _handle_http)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` documenting the problem document for the given statuses."""
    docs: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        docs[status] = {
            "model": ErrorResponse,
            "description": HTTPStatus(status).phrase,
            "content": {
                PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}
            },
        }
    return docs
