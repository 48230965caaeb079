"""Bounds on what one session can cost: the op log's length and a delta page's size."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from src.app.core.settings import Settings
from src.app.main import create_app
from tests.results.conftest import hlc, set_op


@pytest.fixture
async def small_limits() -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    limited = create_app(Settings(max_session_ops=5, max_delta_bytes=1024))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=limited), base_url="http://test"
    ) as http:
        yield limited, http
    await limited.state.database.dispose()


async def _post(
    http: httpx.AsyncClient, headers: dict[str, str], session_id: uuid.UUID, changes: list[Any]
) -> httpx.Response:
    return await http.post(
        f"/v1/tests/sessions/{session_id}/results",
        json={"device_id": "tab-1", "changes": changes},
        headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
    )


async def test_a_full_log_refuses_the_batch_whole(
    small_limits: tuple[FastAPI, httpx.AsyncClient], make_tenant: Any
) -> None:
    _, http = small_limits
    tenant = await make_tenant()
    session_id = uuid.uuid4()
    first = await _post(
        http, tenant.technician.headers, session_id, [set_op(f"/a{i}", i, hlc(i)) for i in range(4)]
    )
    assert first.status_code == 200
    assert first.json()["version"] == 4

    refused = await _post(
        http,
        tenant.technician.headers,
        session_id,
        [set_op("/b", 1, hlc(10)), set_op("/c", 2, hlc(11))],
    )

    assert refused.status_code == 422
    body = refused.json()
    assert body["detail"] == "The session's results log would hold 6 ops, over the limit of 5"
    assert body["errors"] == [
        {"pointer": "/changes", "detail": "the session's results log is full"}
    ]
    after = await http.get(
        f"/v1/tests/sessions/{session_id}/results", headers=tenant.viewer.headers
    )
    assert after.json()["version"] == 4
    assert after.json()["document"] == {"a0": 0, "a1": 1, "a2": 2, "a3": 3}
    # Duplicates cost nothing, so resending what is already there still answers 200.
    again = await _post(http, tenant.technician.headers, session_id, [set_op("/a0", 0, hlc(0))])
    assert (again.status_code, again.json()["duplicates"]) == (200, 1)


async def test_delta_pages_stop_at_the_byte_budget(
    small_limits: tuple[FastAPI, httpx.AsyncClient], make_tenant: Any
) -> None:
    _, http = small_limits
    tenant = await make_tenant()
    session_id = uuid.uuid4()
    blob = "x" * 598  # 600 bytes of JSON: two of them pass the 1,024-byte budget
    posted = await _post(
        http,
        tenant.technician.headers,
        session_id,
        [set_op(f"/v{i}", blob, hlc(i)) for i in range(3)] + [set_op("/small", 1, hlc(3))],
    )
    assert posted.status_code == 200

    pages: list[list[int]] = []
    since: int | None = 0
    while since is not None:
        page = await http.get(
            f"/v1/tests/sessions/{session_id}/results?since={since}", headers=tenant.viewer.headers
        )
        assert page.status_code == 200
        pages.append([op["version"] for op in page.json()["ops"]])
        since = page.json()["next_since"]

    assert pages == [[1, 2], [3, 4]]
