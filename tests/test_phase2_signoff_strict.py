"""The phase 2 sign-off requests, with the one right answer asserted.

tests/test_phase2_final_validation.py (the product owner's acceptance suite, see
docs/api/README.md) is kept exactly as written; its results
test accepts 200, 503 or 504. Here the same requests must get 200 because the merge really
happened, and the error and pagination answers are checked in full.
"""

from __future__ import annotations

import uuid

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from src.app.sessions.models import TestSession
from tests.conftest import TEST_TOKEN_ORG_ID, TEST_TOKEN_USER_ID

TEST_TOKEN_HEADERS = {"Authorization": "Bearer test-token"}


async def test_seed_results_request_is_merged_for_real(client: httpx.AsyncClient) -> None:
    session_id = uuid.uuid4()
    headers = {**TEST_TOKEN_HEADERS, "Idempotency-Key": str(uuid.uuid4())}
    payload = {"changes": [{"op": "set", "path": "/test", "value": "data"}]}

    response = await client.post(
        f"/v1/tests/sessions/{session_id}/results", json=payload, headers=headers
    )

    assert response.status_code == 200
    body = response.json()
    assert body["session_id"] == str(session_id)
    assert body["version"] == 1
    assert body["applied"] == 1
    assert body["duplicates"] == 0
    assert body["document"] == {"test": "data"}

    replay = await client.post(
        f"/v1/tests/sessions/{session_id}/results", json=payload, headers=headers
    )
    assert replay.status_code == 200
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.content == response.content

    stored = await client.get(f"/v1/tests/sessions/{session_id}/results", headers=headers)
    assert stored.status_code == 200
    assert stored.json() == {
        "session_id": str(session_id),
        "version": 1,
        "document": {"test": "data"},
    }

    # The unknown session was created as a draft in the caller's organisation.
    session = await client.get(f"/v1/tests/sessions/{session_id}", headers=TEST_TOKEN_HEADERS)
    assert session.status_code == 200
    assert session.json()["status"] == "draft"
    assert session.json()["created_by"] == str(TEST_TOKEN_USER_ID)


async def test_seed_pagination_request_lists_the_callers_sessions(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    async with app.state.database.sessionmaker() as session:
        expected = await session.scalar(
            select(func.count())
            .select_from(TestSession)
            .where(TestSession.organisation_id == TEST_TOKEN_ORG_ID)
        )

    response = await client.get("/v1/tests/sessions?limit=500", headers=TEST_TOKEN_HEADERS)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"data", "next_cursor"}
    assert body["next_cursor"] is None
    assert len(body["data"]) == expected


async def test_seed_security_request_is_a_full_fire_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/tests/sessions")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["error_code"] == "FIRE-401"
    assert body["retryable"] is False
    assert body["transaction_id"] == response.headers["x-transaction-id"]
