"""50 concurrent writers on 2 server processes leave one unbroken chain per organisation.

The server runs as ``uvicorn --workers 2`` on the PostgreSQL test database, each worker
with its own sealer pass every 50 ms, so sealing races with the writes in both
processes. Afterwards the in-server sealers must have sealed every committed entry (we
only poll), and each organisation's chain must verify and cover exactly its entries.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import make_url, select

from bench._server import UvicornServer
from src.app.audit.cli import verify
from src.app.audit.models import AuditSeal
from src.app.audit.queries import count_unsealed
from src.app.core.audit_model import AuditEntry
from src.app.core.database import Database

pytestmark = pytest.mark.postgres

WRITERS = 50
REQUESTS_PER_WRITER = 4


@pytest.fixture(scope="module")
def live_server(database_url: str) -> Iterator[UvicornServer]:
    assert make_url(database_url).get_backend_name() == "postgresql", (
        "this test needs FIREMODE_TEST_BACKEND=postgresql"
    )
    env = {
        "FIREMODE_DATABASE_URL": database_url,
        "FIREMODE_JWT_SECRET": os.environ["FIREMODE_JWT_SECRET"],
        "FIREMODE_ENV": "test",
        "FIREMODE_AUDIT_SEAL_INTERVAL_SECONDS": "0.05",
    }
    with UvicornServer("src.app.main:app", workers=2, env=env) as server:
        assert len(server.worker_pids()) == 2, server.log_tail()
        yield server


async def _writer(http: httpx.AsyncClient, headers: dict[str, str], index: int) -> int:
    """One tablet: a few results batches on its own session. Returns entries expected."""
    session_id = uuid.uuid4()
    expected = 0
    for batch in range(REQUESTS_PER_WRITER):
        response = await http.post(
            f"/v1/tests/sessions/{session_id}/results",
            json={
                "device_id": f"tablet-{index}",
                "changes": [
                    {
                        "op": "set",
                        "path": f"/assets/a{batch}",
                        "value": batch,
                        "op_id": f"{index}-{batch}",
                    }
                ],
            },
            headers={**headers, "Idempotency-Key": f"{session_id}-{batch}"},
        )
        assert response.status_code == 200, response.text
        expected += 2 if batch == 0 else 1  # the first batch also creates the session
    return expected


async def test_concurrent_writers_leave_unbroken_chains(
    live_server: UvicornServer, app: FastAPI, make_tenant: Any
) -> None:
    tenants = [await make_tenant(), await make_tenant()]
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=60) as http:
        counts = await asyncio.gather(
            *(_writer(http, tenants[i % 2].technician.headers, i) for i in range(WRITERS))
        )
    expected = {
        t.organisation_id: sum(counts[i] for i in range(WRITERS) if i % 2 == j)
        for j, t in enumerate(tenants)
    }
    database: Database = app.state.database
    deadline = time.monotonic() + 30
    for tenant in tenants:
        while True:
            async with database.sessionmaker() as db:
                if await count_unsealed(db, tenant.organisation_id) == 0:
                    break
            assert time.monotonic() < deadline, "the server's sealers did not catch up"
            await asyncio.sleep(0.05)
    for tenant in tenants:
        org = tenant.organisation_id
        (report,) = await verify(database, org)
        assert report.ok, report.as_dict()
        assert (report.check.sealed, report.unsealed) == (expected[org], 0)
        async with database.sessionmaker() as db:
            entries = set(
                (
                    await db.execute(
                        select(AuditEntry.seq).where(AuditEntry.organisation_id == org)
                    )
                ).scalars()
            )
            sealed = (
                await db.execute(
                    select(AuditSeal.entry_seq, AuditSeal.position)
                    .where(AuditSeal.organisation_id == org)
                    .order_by(AuditSeal.position)
                )
            ).all()
        assert {seq for seq, _ in sealed} == entries
        assert [position for _, position in sealed] == list(range(1, len(entries) + 1))
