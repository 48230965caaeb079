"""Engine, sessions and column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from fastapi import Request
from sqlalchemy import JSON, DateTime, MetaData, event, make_url
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator
from sqlalchemy.util import greenlet_spawn

from src.app.core.clock import utc_now
from src.app.core.db_errors import install_disconnect_detection, is_lost_connection

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC; always hands out aware datetimes (SQLite drops the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSONType, datetime: UTCDateTime()}


class IdentifiedMixin:
    """``id``, ``created_at`` and ``updated_at``: what every resource representation carries."""

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now, onupdate=utc_now)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _ensure_sqlite_directory(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


# Seconds a request waits for a pooled connection before its 503 (connection pool exhausted).
POOL_TIMEOUT_SECONDS = 10.0


def build_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int = 10,
    statement_timeout_ms: int = 0,
    pool_timeout_seconds: float = POOL_TIMEOUT_SECONDS,
) -> AsyncEngine:
    if url.startswith("sqlite"):
        _ensure_sqlite_directory(url)
        engine = create_async_engine(url, connect_args={"timeout": 15})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    connect_args: dict[str, Any] = {"timeout": 5, "command_timeout": 30}
    if statement_timeout_ms:
        connect_args["server_settings"] = {"statement_timeout": str(statement_timeout_ms)}
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        # No pre-ping: it costs a round trip per checkout. The first connection found dead
        # answers 503 and invalidates the whole pool (core/db_errors.py), so an outage
        # costs one failed request per process, not one per pooled connection.
        pool_recycle=1800,
        pool_timeout=pool_timeout_seconds,
        connect_args=connect_args,
    )
    install_disconnect_detection(engine)
    return engine


class Database:
    """Lazily creates its engine, because ASGI test transports never run the lifespan."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        max_overflow: int = 10,
        statement_timeout_ms: int = 0,
        pool_timeout_seconds: float = POOL_TIMEOUT_SECONDS,
    ) -> None:
        self.url = url
        self._options = {
            "pool_size": pool_size,
            "max_overflow": max_overflow,
            "statement_timeout_ms": statement_timeout_ms,
        }
        self._engine: AsyncEngine | None = None
        self._sessionmaker: async_sessionmaker[AsyncSession] | None = None
        # The pool's wait, and the admission queue's (driver_slot), before a 503.
        self.pool_timeout_seconds = pool_timeout_seconds
        # Holders driver_slot admits: the pool's size; None under SQLAlchemy's "no limit".
        self._driver_capacity = pool_size + max_overflow if max_overflow >= 0 else None
        self._driver_slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            self._engine = build_engine(
                self.url, **self._options, pool_timeout_seconds=self.pool_timeout_seconds
            )
        return self._engine

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        if self._sessionmaker is None:
            self._sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        return self._sessionmaker

    @property
    def dialect_name(self) -> str:
        return self.engine.dialect.name

    @contextlib.asynccontextmanager
    async def driver_slot(self) -> AsyncIterator[None]:
        """Admission to the pool for :func:`driver_connection`: at most as many holders as
        the pool has connections; the rest wait here, first come first served.

        Waiting in SQLAlchemy's pool costs a greenlet, a task and a timer per waiter, per
        checkout: under 64 connections to two workers that was a quarter of a results
        write's CPU. A waiter here costs one future, and a timer only once it has to wait.
        Admitted, it may still wait in the pool while other routes hold every connection
        (up to the pool's own timeout): each wait is bounded, not their sum.
        """
        if self._driver_capacity is None:  # nobody waits for the pool: nor here
            yield
            return
        loop = asyncio.get_running_loop()
        if self._driver_slots is None or self._driver_slots[0] is not loop:
            # One per event loop: an asyncio semaphore belongs to the loop it first waits on.
            self._driver_slots = (loop, asyncio.Semaphore(self._driver_capacity))
        slots = self._driver_slots[1]
        if slots.locked():
            try:
                async with asyncio.timeout(self.pool_timeout_seconds):
                    await slots.acquire()
            except TimeoutError:
                raise PoolTimeoutError(
                    f"no pooled connection within {self.pool_timeout_seconds:g} s"
                ) from None
        else:
            await slots.acquire()
        try:
            yield
        finally:
            slots.release()

    async def dispose(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
            self._sessionmaker = None


def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request. Routes commit explicitly; anything uncommitted rolls back."""
    async with get_database(request).sessionmaker() as db:
        yield db


@contextlib.asynccontextmanager
async def driver_connection(database: Database) -> AsyncIterator[Any]:
    """A pooled connection's driver connection itself (asyncpg), for a hot path that sends
    one statement and cannot afford SQLAlchemy's execution layer (results sync). The same
    pool and connections as everything else; no transaction is begun (the statement is
    its own). A lost connection discards the whole pool, as ``db_errors`` makes
    SQLAlchemy do for its own statements, so an outage costs one failed request per
    process rather than one per pooled connection. Callers queue in
    :meth:`Database.driver_slot` rather than in the pool.

    The pool's raw connection, not an engine ``Connection``: checking one out and back in
    costs 0.6 of the CPU (no ``Connection`` objects to build; ``bench/driver_checkout.py``)."""
    async with database.driver_slot():
        pooled = await database.engine.raw_connection()
        try:
            yield pooled.driver_connection
        except BaseException as exc:
            # Only an error the server answered leaves the connection ready for the next
            # statement. Anything else (lost, timed out, cancelled mid-statement) may
            # leave the protocol half-way, so the connection is never pooled again.
            if not isinstance(exc, asyncpg.PostgresError) or is_lost_connection(exc):
                await greenlet_spawn(pooled.invalidate)
            if is_lost_connection(exc):
                await database.engine.dispose(close=False)
            raise
        finally:
            # Back to the pool (closing it, if invalidated); may await the driver.
            await greenlet_spawn(pooled.close)
