"""`firemode db upgrade` loads the shipped catalogue (idempotency of the load itself is
tested in-process in test_catalogue.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import func, select

from src.app.core.database import Database
from src.app.rules.catalogue import CATALOGUE
from src.app.rules.models import RuleVersion
from tests.identity.test_cli import firemode


def test_db_upgrade_loads_the_catalogue(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    env = {"FIREMODE_DATABASE_URL": url}
    upgraded = firemode("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr

    async def count() -> int:
        database = Database(url)
        try:
            async with database.sessionmaker() as db:
                return int(await db.scalar(select(func.count()).select_from(RuleVersion)) or 0)
        finally:
            await database.dispose()

    assert asyncio.run(count()) == len(CATALOGUE)
