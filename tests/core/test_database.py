"""The driver path's admission to the pool (``Database.driver_slot``): as many holders as
the pool has connections, the rest queue, and a wait past the pool timeout is the pool's
own "exhausted" error, which the API answers as a retryable 503 that wrote nothing."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from src.app.core.database import Database
from tests.results.conftest import hlc, set_op

# The engine is never built: admission does not touch the database.
UNUSED_URL = "sqlite+aiosqlite:///:memory:"


async def _hold_all(database: Database, held: AsyncExitStack, capacity: int) -> None:
    for _ in range(capacity):
        await held.enter_async_context(database.driver_slot())


async def test_the_pool_admits_as_many_holders_as_it_has_connections() -> None:
    database = Database(UNUSED_URL, pool_size=2, max_overflow=1)
    admitted = asyncio.Event()

    async def one_more() -> None:
        async with database.driver_slot():
            admitted.set()

    async with AsyncExitStack() as held:
        await _hold_all(database, held, 3)
        waiter = asyncio.create_task(one_more())
        for _ in range(10):  # ample turns of the loop for a waiter that would not wait
            await asyncio.sleep(0)
        assert not admitted.is_set()
    # The holders have left: the waiter is admitted.
    await asyncio.wait_for(waiter, timeout=5)
    assert admitted.is_set()


async def test_a_wait_past_the_pool_timeout_is_the_pools_exhausted_error() -> None:
    database = Database(UNUSED_URL, pool_size=1, max_overflow=0, pool_timeout_seconds=0.05)
    async with AsyncExitStack() as held:
        await _hold_all(database, held, 1)
        with pytest.raises(PoolTimeoutError):
            async with database.driver_slot():
                pass
    # The slot the timed-out waiter gave up is not lost: it is free at once.
    async with database.driver_slot():
        pass


async def test_a_pool_without_an_overflow_limit_queues_nobody() -> None:
    # SQLAlchemy's "no limit"
    database = Database(UNUSED_URL, pool_size=1, max_overflow=-1, pool_timeout_seconds=0.05)
    async with AsyncExitStack() as held:
        await _hold_all(database, held, 5)  # would time out behind the first otherwise


@pytest.mark.postgres
async def test_a_results_write_that_finds_the_pool_exhausted_is_503_and_writes_nothing(
    app: FastAPI, client: httpx.AsyncClient, make_tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    tech = (await make_tenant()).technician
    database: Database = app.state.database
    monkeypatch.setattr(database, "pool_timeout_seconds", 0.05)
    settings = app.state.settings
    session_id = uuid.uuid4()
    body = {"device_id": "tab", "changes": [set_op("/a", 1, hlc(1))]}
    headers = {**tech.headers, "Idempotency-Key": "pool-exhausted-1"}
    async with AsyncExitStack() as held:
        await _hold_all(database, held, settings.db_pool_size + settings.db_pool_max_overflow)
        refused = await client.post(
            f"/v1/tests/sessions/{session_id}/results", json=body, headers=headers
        )
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert (refused.json()["error_code"], refused.json()["retryable"]) == ("FIRE-503", True)
    # Nothing was written: the session does not exist, and the key was not spent.
    missing = await client.get(f"/v1/tests/sessions/{session_id}/results", headers=tech.headers)
    assert missing.status_code == 404
    retried = await client.post(
        f"/v1/tests/sessions/{session_id}/results", json=body, headers=headers
    )
    assert (retried.status_code, retried.json()["applied"]) == (200, 1)
