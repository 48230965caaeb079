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

from src.app.core.db_errors import unavailable_reason
from src.app.core.errors import MALFORMED_BODY_DETAIL_PREFIX, problem_response
from src.app.core.metrics import LATENCY, REQUESTS
from src.app.core.request_context import reset_transaction_id, set_transaction_id

logger = logging.getLogger("firemode.http")

TRANSACTION_HEADER = b"x-transaction-id"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Deeper JSON is refused (400) before it is parsed: nobody's record is 64 levels deep, and
# the parser recurses once per level.
MAX_JSON_DEPTH = 64
# Kept from the body for the depth check: quotes and brackets; strings are then cut out.
_KEEP_FOR_DEPTH = bytes(set(range(256)) - set(b'"[]{}'))
_OPEN_CLOSE = bytes.maketrans(b"[]{}", b"()()")


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


def json_too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text nests arrays/objects deeper than ``limit``, without parsing.

    A few passes in C: escaped backslashes and quotes go, then everything but quotes and
    brackets, then the (now bracket-free) strings; innermost bracket pairs are peeled
    until none is left or ``limit`` levels were."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    skeleton = body.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _KEEP_FOR_DEPTH)
    # Quotes now come in pairs around bracket-only strings: keep what lies between pairs.
    brackets = b"".join(skeleton.split(b'"')[::2]).translate(_OPEN_CLOSE)
    if brackets.count(b"(") <= limit:
        return False
    for peeled_levels in range(limit):
        peeled = brackets.replace(b"()", b"")
        if not peeled:
            return False
        if peeled == brackets:  # unbalanced (broken JSON): count what is still open
            return peeled_levels + brackets.count(b"(") > limit
        brackets = peeled
    return True


def malformed_body_problem(body: bytes) -> str | None:
    """Why a JSON request body cannot even be parsed (400), or None."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"{MALFORMED_BODY_DETAIL_PREFIX} not UTF-8 (invalid byte at offset {exc.start})"
    if json_too_deep(body):
        return f"{MALFORMED_BODY_DETAIL_PREFIX} nested deeper than {MAX_JSON_DEPTH} levels"
    return None


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
            app_receive = receive if streamed else self._limited_receive(receive)
            if not streamed and self._is_json_body(scope, headers, method):
                body = await self._read_body(app_receive)
                if body is None:  # the client went away before sending its body
                    status_holder["status"] = 499
                    return
                problem = malformed_body_problem(body)
                if problem is not None:
                    await respond(problem_response(400, problem))
                    return
                app_receive = _replay(body, receive)
            await self.app(scope, app_receive, send_with_id)
        except BodyTooLarge:
            if not status_holder["started"]:
                await respond(self._too_large())
        except Exception as exc:
            reason = unavailable_reason(exc)
            if isinstance(exc, DataError) and reason is None:
                # Backstop: input validation should have refused this value already.
                logger.warning("database refused a value", extra={"error": type(exc.orig).__name__})
                if not status_holder["started"]:
                    await respond(
                        problem_response(422, "The request contains a value that cannot be stored")
                    )
            elif reason is not None:
                logger.warning(
                    "database unavailable", extra={"reason": reason, "error": type(exc).__name__}
                )
                if not status_holder["started"]:
                    await respond(database_unavailable_response())
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

    def _is_json_body(self, scope: Scope, headers: dict[bytes, bytes], method: str) -> bool:
        if method not in BODY_METHODS or scope["path"].startswith(self.non_json_prefixes):
            return False
        if headers.get(b"content-length") == b"0":
            return False
        return _is_json_media_type(headers.get(b"content-type", b"").decode("latin-1"))

    @staticmethod
    async def _read_body(receive: Receive) -> bytes | None:
        """The whole body (the size limit applies as it arrives); None on a disconnect."""
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)

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


def database_unavailable_response() -> Any:
    return problem_response(
        503, "The database is unavailable; retry shortly", headers={"Retry-After": "1"}
    )


def _replay(body: bytes, receive: Receive) -> Receive:
    """Hands the buffered body to the app once, then the client's own messages."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
