"""The OpenAPI schema is valid, every operation has a short unique operationId, and it
documents what the server enforces and answers."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, FastAPI
from openapi_spec_validator import validate

from src.app.core.settings import Settings
from src.app.main import create_app

OPERATION_ID = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def test_the_schema_is_valid_openapi(app: FastAPI) -> None:
    validate(app.openapi())


def test_operation_ids_are_short_unique_and_snake_case(app: FastAPI) -> None:
    ids = [operation["operationId"] for _, _, operation in _operations(app.openapi())]
    assert len(ids) == len(set(ids))
    for operation_id in ids:
        assert OPERATION_ID.match(operation_id), operation_id
        assert len(operation_id) <= 40, operation_id
    assert {"create_building", "create_user", "update_session"} <= set(ids)


def test_a_route_added_later_gets_an_operation_id_too() -> None:
    extra = APIRouter(prefix="/extra")

    @extra.get("/things/{thing_id}")
    async def get_thing(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    @extra.post("/things", name="create_thing")
    async def make(body: dict[str, int]) -> dict[str, int]:
        return body

    app = create_app(Settings())
    app.include_router(extra, prefix="/v1")
    app.openapi_schema = None
    schema = app.openapi()
    assert schema["paths"]["/v1/extra/things/{thing_id}"]["get"]["operationId"] == "get_thing"
    created = schema["paths"]["/v1/extra/things"]["post"]
    assert created["operationId"] == "create_thing"
    # A route that takes a body documents the malformed-body 400.
    assert "400" in created["responses"]


def test_idempotency_key_is_required_where_the_route_requires_it(app: FastAPI) -> None:
    schema = app.openapi()
    required: dict[tuple[str, str], bool] = {}
    for method, path, operation in _operations(schema):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "header" and parameter["name"] == "Idempotency-Key":
                required[(method, path)] = parameter["required"]
                assert parameter["schema"]["pattern"] == "^[ -~]+$"
    assert required[("post", "/v1/tests/sessions/{session_id}/results")] is True
    assert required[("post", "/v1/buildings")] is False
    # Every POST takes the header, required or not.
    posts = {(m, p) for m, p, _ in _operations(schema) if m == "post" and "/auth/" not in p}
    assert posts <= set(required)


def test_every_body_operation_documents_400_for_a_malformed_body(app: FastAPI) -> None:
    for method, path, operation in _operations(app.openapi()):
        if "requestBody" in operation:
            description = operation["responses"]["400"]["description"]
            assert "not UTF-8, not JSON, or nested deeper than 64 levels" in description, (
                method,
                path,
            )
