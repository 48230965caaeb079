"""Migrations build the whole schema, match the models, and run down and up again."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import make_url

from src.app.core.migrations import alembic_config


def _round_trip(url: str) -> None:
    config = alembic_config(url)
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")
    command.check(config)
    command.downgrade(config, "base")
    command.upgrade(config, "head")
    command.check(config)


def test_sqlite_upgrade_check_downgrade_upgrade(tmp_path: Path) -> None:
    _round_trip(f"sqlite+aiosqlite:///{tmp_path / 'roundtrip.db'}")


@pytest.mark.postgres
def test_postgresql_upgrade_check_downgrade_upgrade(database_url: str, admin_dsn: str) -> None:
    import asyncpg

    name = f"fm_migrate_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        connection = await asyncpg.connect(admin_dsn)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
        _round_trip(url)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
