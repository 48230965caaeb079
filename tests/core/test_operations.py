"""Health, readiness, metrics and the OpenAPI description of errors."""

from __future__ import annotations

from pathlib import Path

import httpx

from src.app.core.migrations import head_revisions
from src.app.core.settings import Settings
from src.app.main import create_app


async def test_health_is_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_on_migrated_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "database": "ok",
        "schema_revision": ",".join(sorted(head_revisions())),
    }


async def test_ready_is_503_on_unmigrated_database(tmp_path: Path) -> None:
    fresh = create_app(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=fresh), base_url="http://test"
    ) as http:
        response = await http.get("/health/ready")
    await fresh.state.database.dispose()
    assert response.status_code == 503
    body = response.json()
    assert body["error_code"] == "FIRE-503"
    assert body["detail"] == "The database schema is at revision none, not at the latest migration"
    assert response.headers["retry-after"] == "30"


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/health")
    await client.get("/v1/nonexistent-path")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'firemode_http_requests_total{method="GET",route="/health",status="200"}' in text
    assert 'firemode_http_requests_total{method="GET",route="<unmatched>",status="404"}' in text
    assert "firemode_http_request_duration_seconds_bucket" in text


async def test_openapi_documents_the_error_envelope_on_every_operation(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    error_schema = schema["components"]["schemas"]["ErrorResponse"]
    assert set(error_schema["required"]) >= {
        "type",
        "title",
        "status",
        "detail",
        "instance",
        "transaction_id",
        "error_code",
        "message",
        "retryable",
    }
    ref = {"$ref": "#/components/schemas/ErrorResponse"}
    operations = 0
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            operations += 1
            for status in ("404", "422", "500", "503"):
                content = operation["responses"][status]["content"]
                assert content == {"application/problem+json": {"schema": ref}}, (path, method)
            if operation.get("security"):
                assert "401" in operation["responses"], (path, method)
    assert operations >= 3


async def test_docs_page_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert "swagger-ui" in response.text.lower()
