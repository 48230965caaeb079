"""Helpers for the audit tests: entries by transaction id, sealing, verifying."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from src.app.audit.cli import verify
from src.app.audit.sealer import seal_all
from src.app.audit.verify import ChainReport
from src.app.core.audit_model import AuditEntry
from src.app.core.database import Database


def tx_headers(headers: dict[str, str]) -> tuple[dict[str, str], str]:
    """``headers`` plus a fresh ``X-Transaction-ID``, and that id."""
    transaction_id = str(uuid.uuid4())
    return {**headers, "X-Transaction-ID": transaction_id}, transaction_id


async def entries_of(app: FastAPI, transaction_id: str) -> Sequence[AuditEntry]:
    database: Database = app.state.database
    async with database.sessionmaker() as db:
        rows = await db.execute(
            select(AuditEntry)
            .where(AuditEntry.transaction_id == transaction_id)
            .order_by(AuditEntry.seq)
        )
        return rows.scalars().all()


async def one_entry(app: FastAPI, transaction_id: str) -> AuditEntry:
    found = await entries_of(app, transaction_id)
    assert len(found) == 1, [e.action for e in found]
    return found[0]


async def sealed_and_verified(app: FastAPI, organisation_id: uuid.UUID) -> ChainReport:
    database: Database = app.state.database
    await seal_all(database)
    (report,) = await verify(database, organisation_id)
    return report


@pytest.fixture
def database(app: FastAPI) -> Database:
    db: Database = app.state.database
    return db


def payload_of(entry: AuditEntry) -> dict[str, Any]:
    return dict(entry.payload)
