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


ROUTE_SPECIFIC_STATUSES = {
    ("/v1/auth/login", "post"): {"401", "422", "429"},
    ("/v1/tests/sessions", "post"): {"201", "200", "409", "404", "403", "401"},
    ("/v1/tests/sessions", "get"): {"200", "400", "401", "403", "422"},
    ("/v1/tests/sessions/{session_id}/results", "post"): {"200", "400", "403", "404", "409", "422"},
    ("/v1/buildings/{building_id}", "delete"): {"204", "409", "404"},
    ("/v1/users", "get"): {"200", "400", "401", "403"},
}


async def test_openapi_documents_route_specific_statuses_and_headers(
    client: httpx.AsyncClient,
) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for (path, method), statuses in ROUTE_SPECIFIC_STATUSES.items():
        documented = set(paths[path][method]["responses"])
        assert statuses <= documented, (path, method, sorted(statuses - documented))
    login = paths["/v1/auth/login"]["post"]["responses"]
    assert set(login["429"]["headers"]) == {"Retry-After"}
    results = paths["/v1/tests/sessions/{session_id}/results"]["post"]["responses"]
    assert set(results["409"]["headers"]) == {"Retry-After"}
    assert set(results["200"]["headers"]) == {"Idempotent-Replayed", "Preference-Applied"}
    assert set(paths["/health/ready"]["get"]["responses"]["503"]["headers"]) == {"Retry-After"}


async def test_docs_page_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert "swagger-ui" in response.text.lower()
