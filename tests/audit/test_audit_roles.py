"""With separate roles, the application's role cannot change or delete audit rows."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import make_url

from src.app.core import migrations

pytestmark = pytest.mark.postgres


def test_app_role_may_insert_but_not_update_or_delete(
    database_url: str, admin_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncpg

    name = f"fm_roles_{uuid.uuid4().hex[:10]}"
    role = f"fm_app_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        connection = await asyncpg.connect(admin_dsn)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    asyncio.run(admin(f'CREATE ROLE "{role}" NOLOGIN'))
    url = make_url(database_url).set(database=name)
    try:
        monkeypatch.setenv("FIREMODE_DB_APP_ROLE", role)
        migrations.upgrade(url.render_as_string(hide_password=False))

        async def as_app() -> None:
            dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
            connection = await asyncpg.connect(dsn)
            try:
                org = uuid.uuid4()
                await connection.execute(
                    "INSERT INTO organisations (id, name, created_at, updated_at) "
                    "VALUES ($1, 'o', now(), now())",
                    org,
                )
                await connection.execute(f'SET ROLE "{role}"')
                await connection.execute(
                    "INSERT INTO audit_entries (id, organisation_id, actor_type, action, "
                    "subject_type, subject_id, payload, transaction_id, created_at) VALUES "
                    "($1, $2, 'system', 'a', 's', '1', '{}', 't', now())",
                    uuid.uuid4(),
                    org,
                )
                for statement in (
                    "UPDATE audit_entries SET action = 'b'",
                    "DELETE FROM audit_entries",
                    "DELETE FROM audit_seals",
                ):
                    with pytest.raises(asyncpg.InsufficientPrivilegeError):
                        await connection.execute(statement)
            finally:
                await connection.close()

        asyncio.run(as_app())
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        asyncio.run(admin(f'DROP ROLE IF EXISTS "{role}"'))
