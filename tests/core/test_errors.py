"""Every error class answers with the exact problem document."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.core.database import get_db
from src.app.core.errors import PROBLEM_CONTENT_TYPE
from src.app.core.schemas import RequestModel
from src.app.core.settings import Settings
from src.app.main import create_app

SECRET_TEXT = "boom: password=hunter2 SELECT * FROM users /srv/firemode/secret.py"
CLOSED_PORT_URL = "postgresql+asyncpg://postgres@127.0.0.1:1/firemode"


class EchoBody(RequestModel):
    name: str
    count: int
    meta: dict[str, Any] | None = None


def _probe_router() -> APIRouter:
    router = APIRouter()

    @router.post("/probe/echo")
    async def echo(body: EchoBody) -> EchoBody:
        return body

    @router.get("/probe/boom")
    async def boom() -> None:
        raise RuntimeError(SECRET_TEXT)

    @router.get("/probe/db")
    async def uses_db(session: AsyncSession = Depends(get_db)) -> dict[str, int]:
        value = (await session.execute(text("SELECT 1"))).scalar_one()
        return {"value": int(value)}

    return router


def _app_with_probes(database_url: str, **overrides: object) -> FastAPI:
    settings = Settings(database_url=database_url, **overrides)  # type: ignore[arg-type]
    probe_app = create_app(settings)
    probe_app.include_router(_probe_router())
    return probe_app


@pytest.fixture
async def probe_client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    probe_app = _app_with_probes(database_url, max_body_bytes=2048)
    transport = httpx.ASGITransport(app=probe_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http
    await probe_app.state.database.dispose()


def assert_problem(response: httpx.Response, status: int, *, retryable: bool) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    body = response.json()
    transaction_id = response.headers["x-transaction-id"]
    assert str(uuid.UUID(transaction_id)) == transaction_id
    assert body["transaction_id"] == transaction_id
    assert body["instance"] == f"urn:uuid:{transaction_id}"
    assert body["error_code"] == f"FIRE-{status}"
    assert body["status"] == status
    assert body["type"] == f"https://firemode.dev/errors/FIRE-{status}"
    assert body["retryable"] is retryable
    assert body["message"] == body["detail"]
    assert isinstance(body["title"], str) and body["title"]
    return body  # type: ignore[no-any-return]


async def test_unknown_path_is_fire_404_and_retryable(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/v1/nonexistent-path"), 404, retryable=True)
    assert body["detail"] == "No resource exists at /v1/nonexistent-path"
    assert "errors" not in body


async def test_wrong_method_is_fire_405(client: httpx.AsyncClient) -> None:
    response = await client.delete("/health")
    assert_problem(response, 405, retryable=False)
    assert response.headers["allow"] == "GET"


async def test_validation_error_lists_json_pointers(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.post("/probe/echo", json={"name": "x", "count": "many", "x": 1})
    body = assert_problem(response, 422, retryable=False)
    pointers = sorted(e["pointer"] for e in body["errors"])  # type: ignore[union-attr]
    assert pointers == ["/count", "/x"]


async def test_malformed_json_is_422_with_pointer(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.post(
        "/probe/echo", content=b'{"name": ', headers={"content-type": "application/json"}
    )
    body = assert_problem(response, 422, retryable=False)
    assert body["errors"] == [
        {"pointer": "", "detail": "The body is not valid JSON: Expecting value"}
    ]


@pytest.mark.parametrize(
    ("raw", "pointer", "detail"),
    [
        (b'{"name": "a\\u0000b", "count": 1}', "/name", "must not contain the character U+0000"),
        (
            b'{"name": "x", "count": 1, "meta": {"k": ["\\ud800"]}}',
            "/meta",
            "must not contain unpaired surrogate characters",
        ),
        (
            b'{"name": "x", "count": 1, "meta": {"v": 1e400}}',
            "/meta",
            "must be a finite number (no NaN or Infinity)",
        ),
        (
            b'{"name": "x", "count": 1, "meta": {"v": NaN}}',
            "/meta",
            "must be a finite number (no NaN or Infinity)",
        ),
    ],
)
async def test_values_no_database_can_store_are_422(
    probe_client: httpx.AsyncClient, raw: bytes, pointer: str, detail: str
) -> None:
    response = await probe_client.post(
        "/probe/echo", content=raw, headers={"content-type": "application/json"}
    )
    body = assert_problem(response, 422, retryable=False)
    assert {"pointer": pointer, "detail": detail} in body["errors"]  # type: ignore[operator]


async def test_nul_in_the_url_is_422_before_any_query(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/v1/buildings?q=a%00b"), 422, retryable=False)
    assert body["detail"] == "The URL must not contain the character U+0000"


async def test_body_over_limit_is_413_by_content_length(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.post(
        "/probe/echo", content=b"x" * 4096, headers={"content-type": "application/json"}
    )
    body = assert_problem(response, 413, retryable=False)
    assert body["detail"] == "The request body exceeds the limit of 2048 bytes"


async def test_streamed_body_over_limit_is_413_before_read_whole(
    probe_client: httpx.AsyncClient,
) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(64):
            sent += 1
            yield b" " * 1024

    response = await probe_client.post(
        "/probe/echo", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, retryable=False)
    assert "content-length" not in response.request.headers
    # The limit (2 KiB) was hit on the third chunk; the rest was never requested.
    assert sent < 64


async def test_non_json_body_is_415(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.post(
        "/probe/echo", content=b"name=x", headers={"content-type": "text/plain"}
    )
    body = assert_problem(response, 415, retryable=False)
    assert body["detail"] == "Request bodies must be JSON (Content-Type: application/json)"


async def test_unhandled_exception_is_opaque_500_logged_with_transaction_id(
    probe_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="firemode.http"):
        response = await probe_client.get("/probe/boom")
    body = assert_problem(response, 500, retryable=True)
    assert body["detail"] == "An internal error occurred"
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
    assert "RuntimeError" not in response.text
    logged = [r for r in caplog.records if r.getMessage() == "unhandled exception"]
    assert len(logged) == 1
    assert logged[0].exc_info is not None
    assert str(logged[0].exc_info[1]) == SECRET_TEXT


async def test_client_transaction_id_is_echoed(client: httpx.AsyncClient) -> None:
    mine = str(uuid.uuid4())
    response = await client.get("/v1/nonexistent-path", headers={"X-Transaction-ID": mine})
    assert response.headers["x-transaction-id"] == mine
    assert response.json()["transaction_id"] == mine


async def test_invalid_client_transaction_id_is_replaced(client: httpx.AsyncClient) -> None:
    response = await client.get("/health", headers={"X-Transaction-ID": "not-a-uuid"})
    assert response.status_code == 200
    assert response.headers["x-transaction-id"] != "not-a-uuid"
    uuid.UUID(response.headers["x-transaction-id"])


async def test_unreachable_database_is_503_with_retry_after() -> None:
    dead_app = _app_with_probes(CLOSED_PORT_URL)
    transport = httpx.ASGITransport(app=dead_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/probe/db")
        ready = await http.get("/health/ready")
        alive = await http.get("/health")
    await dead_app.state.database.dispose()
    body = assert_problem(response, 503, retryable=True)
    assert body["detail"] == "The database is unavailable; retry shortly"
    assert response.headers["retry-after"] == "1"
    assert "127.0.0.1" not in response.text
    assert_problem(ready, 503, retryable=True)
    assert ready.headers["retry-after"] == "5"
    assert alive.status_code == 200
