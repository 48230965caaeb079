"""The new routes are in a valid OpenAPI document, each with its statuses documented."""

from __future__ import annotations

import httpx
from openapi_spec_validator import validate

ROUTES = {
    ("/v1/rules", "get"): {"400", "401", "403", "422"},
    ("/v1/rules", "post"): {"401", "403", "409", "422"},
    ("/v1/rules/{code}", "get"): {"401", "403", "404"},
    ("/v1/rules/{code}/versions/{version}", "get"): {"401", "403", "404"},
    ("/v1/rules/{code}/versions", "post"): {"401", "403", "404", "409", "422"},
    ("/v1/tests/sessions/{session_id}/evaluation", "get"): {"401", "403", "404"},
    ("/v1/defects", "post"): {"401", "403", "404", "409", "422"},
    ("/v1/defects", "get"): {"400", "401", "403", "422"},
    ("/v1/defects/{defect_id}", "get"): {"401", "403", "404"},
    ("/v1/defects/{defect_id}", "patch"): {"401", "403", "404", "409", "422"},
    ("/v1/defects/deadlines", "get"): {"401", "403"},
    ("/v1/defects/deadlines", "put"): {"401", "403", "422"},
    ("/v1/webhooks", "post"): {"401", "403", "409", "422"},
    ("/v1/webhooks", "get"): {"400", "401", "403"},
    ("/v1/webhooks/{subscription_id}", "get"): {"401", "403", "404"},
    ("/v1/webhooks/{subscription_id}", "patch"): {"401", "403", "404", "422"},
    ("/v1/webhooks/{subscription_id}", "delete"): {"401", "403", "404"},
    ("/v1/webhooks/{subscription_id}/deliveries", "get"): {"400", "401", "403", "404"},
    ("/v1/webhooks/{subscription_id}/deliveries/{delivery_id}/retry", "post"): {
        "401",
        "403",
        "404",
        "409",
    },
}


async def test_new_routes_are_documented(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    validate(schema)
    for (path, method), statuses in ROUTES.items():
        operation = schema["paths"][path][method]
        assert statuses <= set(operation["responses"]), (path, method)
        assert operation.get("summary"), (path, method)
    evaluation = schema["paths"]["/v1/tests/sessions/{session_id}/evaluation"]["get"]
    assert "/checklists/{asset_id}/{rule_code}/{item_key}" in evaluation["description"]
