"""Migration 0003_results_state carries results written the old way over, and back."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from src.app.core.clock import utc_now
from src.app.core.database import JSONType, UTCDateTime
from src.app.core.migrations import alembic_config
from src.app.results.crdt import Op, merge, parse_pointer
from src.app.results.documents import current_document
from src.app.results.models import ResultHead
from tests.results.test_crdt_engine import ts

ORGANISATIONS = sa.table(
    "organisations",
    sa.column("id", sa.Uuid()),
    sa.column("name", sa.String()),
    sa.column("created_at", UTCDateTime()),
    sa.column("updated_at", UTCDateTime()),
)
OLD_SESSIONS = sa.table(
    "test_sessions",
    sa.column("id", sa.Uuid()),
    sa.column("organisation_id", sa.Uuid()),
    sa.column("session_name", sa.String()),
    sa.column("status", sa.String()),
    sa.column("results_document", JSONType),
    sa.column("results_version", sa.BigInteger()),
    sa.column("results_last_key", sa.String()),
    sa.column("results_size_bytes", sa.Integer()),
    sa.column("created_at", UTCDateTime()),
    sa.column("updated_at", UTCDateTime()),
)
OPS = sa.table(
    "result_ops",
    sa.column("session_id", sa.Uuid()),
    sa.column("version", sa.BigInteger()),
    sa.column("organisation_id", sa.Uuid()),
    sa.column("op", sa.String()),
    sa.column("path", sa.Text()),
    sa.column("value", JSONType),
    sa.column("ts", sa.String()),
    sa.column("device_id", sa.String()),
    sa.column("op_id", sa.String()),
    sa.column("created_at", UTCDateTime()),
)


def _op(kind: str, path: str, value: Any, at: str, device: str, op_id: str) -> Op:
    return Op(kind, path, value, at, device, op_id, parse_pointer(path))  # type: ignore[arg-type]


# Parent/child overlaps, deletes, late ops, equal wall times, several devices.
LOGS = {
    "overlaps": [
        _op("set", "/a", 5, ts(1_000), "d1", "o1"),
        _op("set", "/a/b", 1, ts(1_000, 1), "d2", "o2"),
        _op("delete", "/a/b", None, ts(1_001), "d1", "o3"),
        _op("set", "/x", {"y": [1, None], "z": "é"}, ts(900), "d3", "o4"),
        _op("delete", "/x/z", None, ts(950), "d2", "o5"),
        _op("set", "/x", "late", ts(800), "d1", "o6"),
    ],
    "empty-after-delete": [
        _op("set", "/k", 1, ts(1), "d1", "p1"),
        _op("delete", "/k", None, ts(2), "d1", "p2"),
    ],
}


async def _write_old_results(url: str) -> dict[str, tuple[uuid.UUID, uuid.UUID, dict[str, Any]]]:
    engine = create_async_engine(url)
    written: dict[str, tuple[uuid.UUID, uuid.UUID, dict[str, Any]]] = {}
    try:
        async with engine.begin() as conn:
            now = utc_now()
            org = uuid.uuid4()
            await conn.execute(
                ORGANISATIONS.insert(),
                {"id": org, "name": "migrated", "created_at": now, "updated_at": now},
            )
            for name, log in [*LOGS.items(), ("no-results", [])]:
                session_id = uuid.uuid4()
                document = merge(log)
                last = max((op.order_key for op in log), default=None)
                await conn.execute(
                    OLD_SESSIONS.insert(),
                    {
                        "id": session_id,
                        "organisation_id": org,
                        "session_name": name,
                        "status": "in_progress",
                        "results_document": document,
                        "results_version": len(log),
                        "results_last_key": "\x1f".join(last) if last else None,
                        "results_size_bytes": 2,
                        "created_at": now,
                        "updated_at": now,
                    },
                )
                for version, op in enumerate(log, start=1):
                    await conn.execute(
                        OPS.insert(),
                        {
                            "session_id": session_id,
                            "version": version,
                            "organisation_id": org,
                            "op": op.op,
                            "path": op.path,
                            "value": op.value,
                            "ts": op.ts,
                            "device_id": op.device_id,
                            "op_id": op.op_id,
                            "created_at": now,
                        },
                    )
                written[name] = (org, session_id, document)
    finally:
        await engine.dispose()
    return written


async def _documents(url: str, written: dict[str, Any]) -> dict[str, tuple[int, dict[str, Any]]]:
    from sqlalchemy.ext.asyncio import async_sessionmaker

    engine = create_async_engine(url)
    try:
        async with async_sessionmaker(engine)() as db:
            return {
                name: await current_document(db, org, session_id)
                for name, (org, session_id, _doc) in written.items()
            }
    finally:
        await engine.dispose()


async def _old_documents(url: str) -> dict[str, tuple[int, Any]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                sa.select(
                    OLD_SESSIONS.c.session_name,
                    OLD_SESSIONS.c.results_version,
                    OLD_SESSIONS.c.results_document,
                )
            )
            return {name: (version, doc) for name, version, doc in rows}
    finally:
        await engine.dispose()


async def _heads(url: str) -> int:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return int(await conn.scalar(sa.select(sa.func.count()).select_from(ResultHead)) or 0)
    finally:
        await engine.dispose()


def _carry_over(url: str) -> None:
    config = alembic_config(url)
    config.attributes["configure_logging"] = False
    command.upgrade(config, "0002")
    written = asyncio.run(_write_old_results(url))

    command.upgrade(config, "head")

    documents = asyncio.run(_documents(url, written))
    assert documents == {
        name: (len(LOGS.get(name, [])), document) for name, (_o, _s, document) in written.items()
    }
    assert documents["overlaps"][1] == {"a": {}, "x": {"y": [1, None]}}
    assert asyncio.run(_heads(url)) == len(LOGS)  # a session without results has no head

    command.downgrade(config, "0002")
    assert asyncio.run(_old_documents(url)) == {
        name: (len(LOGS.get(name, [])), document) for name, (_o, _s, document) in written.items()
    }
    command.upgrade(config, "head")


def test_sqlite_results_written_at_0002_read_the_same_at_head(tmp_path: Path) -> None:
    _carry_over(f"sqlite+aiosqlite:///{tmp_path / 'carry.db'}")


@pytest.fixture
def scratch_postgres(database_url: str, admin_dsn: str) -> Iterator[str]:
    import asyncpg

    name = f"fm_carry_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        connection = await asyncpg.connect(admin_dsn)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(database_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.mark.postgres
def test_postgresql_results_written_at_0002_read_the_same_at_head(scratch_postgres: str) -> None:
    _carry_over(scratch_postgres)
