"""The OpenAPI schema documents the upload form: every field, status and header."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from src.app.evidence.models import EvidenceKind


def _operation(app: FastAPI, path: str, method: str) -> dict[str, Any]:
    operation: dict[str, Any] = app.openapi()["paths"][path][method]
    return operation


def test_upload_is_a_documented_multipart_form(app: FastAPI):
    operation = _operation(app, "/v1/evidence", "post")
    form = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert operation["requestBody"]["required"] is True
    assert set(form["properties"]) == {
        "file",
        "session_id",
        "asset_id",
        "defect_id",
        "kind",
        "sha256",
        "captured_at",
        "device_id",
        "metadata",
    }
    assert form["required"] == ["file", "session_id", "kind", "sha256"]
    assert form["properties"]["file"] == {
        "type": "string",
        "format": "binary",
        "description": form["properties"]["file"]["description"],
    }
    assert form["properties"]["kind"]["enum"] == [k.value for k in EvidenceKind]
    assert all(field.get("description") for field in form["properties"].values())
    statuses = set(operation["responses"])
    assert statuses >= {"200", "201", "400", "401", "403", "404", "409", "413", "415", "422"}
    assert "Idempotent-Replayed" in operation["responses"]["201"]["headers"]
    assert "Retry-After" in operation["responses"]["409"]["headers"]
    key = next(p for p in operation["parameters"] if p["name"] == "Idempotency-Key")
    assert key["in"] == "header"
    assert "Required" in key["description"]


def test_content_documents_ranges_and_damage(app: FastAPI):
    operation = _operation(app, "/v1/evidence/{evidence_id}/content", "get")
    assert {"200", "206", "304", "404", "409", "410", "416"} <= set(operation["responses"])
    names = {p["name"] for p in operation["parameters"]}
    assert {"variant", "Range", "If-Range", "If-None-Match"} <= names
    assert "ETag" in operation["responses"]["200"]["headers"]
    assert "Content-Range" in operation["responses"]["206"]["headers"]


def test_schema_is_valid_openapi(app: FastAPI):
    from openapi_spec_validator import validate

    validate(app.openapi())
