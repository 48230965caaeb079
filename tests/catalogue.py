"""Loads the shipped rule catalogue into the test database (idempotent), for the test
packages that need rules: import ``shipped_catalogue`` into a conftest."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from src.app.core.transactions import begin_write
from src.app.rules.service import load_shipped_catalogue


@pytest.fixture(scope="session", autouse=True)
async def shipped_catalogue(migrated_database: str, app: FastAPI) -> None:
    async with app.state.database.sessionmaker() as db:
        await begin_write(db)
        await load_shipped_catalogue(db)
        await db.commit()
