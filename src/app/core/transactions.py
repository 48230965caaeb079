"""The request's write transaction."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


async def begin_write(db: AsyncSession) -> None:
    """Start the request's write transaction.

    Ends the (read-only) transaction the auth dependencies opened. On SQLite, takes the
    database write lock up front with ``BEGIN IMMEDIATE``: a deferred transaction that
    reads and then writes fails with "database is locked" when another writer committed
    in between, whatever the busy timeout. pysqlite/aiosqlite (legacy transaction
    control, which the engine uses) honour an explicit BEGIN and commit it normally.
    """
    bind = db.get_bind()
    if bind.dialect.name != "sqlite":
        return
    if db.in_transaction():
        await db.commit()
    await db.execute(text("BEGIN IMMEDIATE"))
