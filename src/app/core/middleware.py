"""The outermost request layer: transaction id, body limits, media types, metrics, logs,
and the last-resort 500/503 that never shows a traceback to the client."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from src.app.core.db_errors import is_database_unavailable
from src.app.core.errors import problem_response
from src.app.core.metrics import LATENCY, REQUESTS
from src.app.core.request_context import reset_transaction_id, set_transaction_id

logger = logging.getLogger("firemode.http")

TRANSACTION_HEADER = b"x-transaction-id"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class BodyTooLarge(StarletteHTTPException):
    """An HTTPException, so FastAPI's body parsing re-raises it instead of answering 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body exceeds the limit of {limit} bytes")


def _parse_transaction_id(raw: bytes | None) -> str:
    if raw:
        try:
            return str(uuid.UUID(raw.decode("latin-1").strip()))
        except ValueError:
            pass
    return str(uuid.uuid4())


def _is_json_media_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        non_json_prefixes: tuple[str, ...] = (),
        streamed_body_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.non_json_prefixes = non_json_prefixes
        # POST paths whose route streams its (non-JSON) body and enforces its own limit.
        self.streamed_body_paths = streamed_body_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        headers = dict(scope.get("headers") or [])
        transaction_id = _parse_transaction_id(headers.get(TRANSACTION_HEADER))
        token = set_transaction_id(transaction_id)
        scope.setdefault("state", {})["transaction_id"] = transaction_id
        started = time.perf_counter()
        status_holder = {"status": 500, "started": False}
        method: str = scope["method"]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = True
                raw = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != TRANSACTION_HEADER
                ]
                raw.append((TRANSACTION_HEADER, transaction_id.encode()))
                message = {**message, "headers": raw}
            await send(message)

        async def respond(response: Any) -> None:
            await response(scope, receive, send_with_id)

        try:
            early = self._reject_early(scope, headers, method)
            if early is not None:
                await respond(early)
                return
            streamed = method == "POST" and scope["path"] in self.streamed_body_paths
            limited = receive if streamed else self._limited_receive(receive)
            await self.app(scope, limited, send_with_id)
        except BodyTooLarge:
            if not status_holder["started"]:
                await respond(self._too_large())
        except Exception as exc:
            if isinstance(exc, DataError):
                # Backstop: input validation should have refused this value already.
                logger.warning("database refused a value", extra={"error": type(exc.orig).__name__})
                if not status_holder["started"]:
                    await respond(
                        problem_response(422, "The request contains a value that cannot be stored")
                    )
            elif is_database_unavailable(exc):
                logger.warning("database unavailable", exc_info=exc)
                if not status_holder["started"]:
                    await respond(
                        problem_response(
                            503,
                            "The database is unavailable; retry shortly",
                            headers={"Retry-After": "1"},
                        )
                    )
            else:
                logger.error("unhandled exception", exc_info=exc)
                if not status_holder["started"]:
                    await respond(problem_response(500, "An internal error occurred"))
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "<unmatched>"
            status = status_holder["status"]
            elapsed = time.perf_counter() - started
            REQUESTS.labels(template, method, str(status)).inc()
            LATENCY.labels(template, method).observe(elapsed)
            logger.info(
                "request",
                extra={
                    "method": method,
                    "route": template,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                },
            )
            reset_transaction_id(token)

    def _too_large(self) -> Any:
        return problem_response(
            413, f"The request body exceeds the limit of {self.max_body_bytes} bytes"
        )

    def _reject_early(self, scope: Scope, headers: dict[bytes, bytes], method: str) -> Any:
        query: bytes = scope.get("query_string", b"")
        if b"%00" in query or b"\x00" in query or "\x00" in scope["path"]:
            # No database stores U+0000 in text: refuse it uniformly, before any query.
            return problem_response(422, "The URL must not contain the character U+0000")
        if method not in BODY_METHODS or (
            method == "POST" and scope["path"] in self.streamed_body_paths
        ):
            return None
        length_raw = headers.get(b"content-length")
        if length_raw is not None:
            try:
                length = int(length_raw)
            except ValueError:
                return problem_response(400, "Content-Length is not a number")
            if length > self.max_body_bytes:
                return self._too_large()
        else:
            length = -1 if b"transfer-encoding" in headers else 0
        path: str = scope["path"]
        if length != 0 and not path.startswith(self.non_json_prefixes):
            content_type = headers.get(b"content-type", b"").decode("latin-1")
            if not _is_json_media_type(content_type):
                return problem_response(
                    415, "Request bodies must be JSON (Content-Type: application/json)"
                )
        return None

    def _limited_receive(self, receive: Receive) -> Receive:
        received = 0
        limit = self.max_body_bytes

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        return limited
