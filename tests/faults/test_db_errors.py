"""The one classification of "the database is unavailable": every way asyncpg, aiosqlite
and SQLAlchemy report an outage is a 503 with Retry-After, logged once; bugs stay 500."""

from __future__ import annotations

import json
import logging
import sqlite3

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from src.app.core.db_errors import is_database_unavailable, unavailable_reason
from src.app.core.errors import ApiError
from src.app.core.logging import JsonFormatter
from src.app.core.settings import Settings
from src.app.main import create_app


class _AdaptedError(Exception):
    """Stands in for SQLAlchemy's adapted DBAPI error, which carries the SQLSTATE."""

    def __init__(self, cause: asyncpg.PostgresError) -> None:
        super().__init__(str(cause))
        self.sqlstate = cause.sqlstate
        self.__cause__ = cause


def _wrapped(cause: asyncpg.PostgresError) -> DBAPIError:
    """What SQLAlchemy raises for an asyncpg server error (a plain DBAPIError)."""
    adapted = _AdaptedError(cause)
    error = DBAPIError("SELECT 1", {}, adapted)
    error.__cause__ = adapted
    return error


def _sqlite(name: str, message: str) -> OperationalError:
    orig = sqlite3.OperationalError(message)
    orig.sqlite_errorname = name  # type: ignore[attr-defined]
    error = OperationalError("SELECT 1", {}, orig)
    error.__cause__ = orig
    return error


UNAVAILABLE = [
    ("refused", ConnectionRefusedError(111, "Connect call failed"), "connection refused"),
    (
        "shutting down",
        _wrapped(asyncpg.CannotConnectNowError("the database system is shutting down")),
        "server starting up or shutting down",
    ),
    (
        "starting up",
        _wrapped(asyncpg.CannotConnectNowError("the database system is starting up")),
        "server starting up or shutting down",
    ),
    (
        "admin shutdown",
        _wrapped(asyncpg.AdminShutdownError("terminating connection due to administrator")),
        "server shutting down",
    ),
    (
        "reset mid-statement",
        _wrapped(asyncpg.ConnectionDoesNotExistError("connection was closed in the middle")),
        "connection failure",
    ),
    ("reset by peer", ConnectionResetError(104, "Connection reset by peer"), "connection lost"),
    (
        "protocol left half-way (raw driver)",
        asyncpg.InternalClientError(
            "cannot switch to state 12; another operation (2) is in progress"
        ),
        "connection lost",
    ),
    (
        "closed (raw driver)",
        asyncpg.InterfaceError("cannot call Connection.fetchrow(): connection is closed"),
        "connection lost",
    ),
    ("pool timeout", PoolTimeoutError("QueuePool limit reached"), "connection pool exhausted"),
    (
        "statement timeout",
        _wrapped(asyncpg.QueryCanceledError("canceling statement due to statement timeout")),
        "statement timeout",
    ),
    ("disk full", _wrapped(asyncpg.DiskFullError("could not extend file")), "disk full"),
    (
        "read-only",
        _wrapped(asyncpg.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only")),
        "read-only database",
    ),
    (
        "too many connections",
        _wrapped(asyncpg.TooManyConnectionsError("sorry, too many clients already")),
        "server out of resources",
    ),
    ("connect timeout", TimeoutError(), "connection timed out"),
    ("sqlite locked", _sqlite("SQLITE_BUSY", "database is locked"), "database locked"),
    ("sqlite full", _sqlite("SQLITE_FULL", "database or disk is full"), "disk full"),
    (
        "sqlite read-only",
        _sqlite("SQLITE_READONLY", "attempt to write a readonly database"),
        "read-only database",
    ),
    ("sqlite I/O", _sqlite("SQLITE_IOERR_WRITE", "disk I/O error"), "disk I/O error"),
]


@pytest.mark.parametrize(("case", "error", "reason"), UNAVAILABLE, ids=[c[0] for c in UNAVAILABLE])
def test_outages_are_classified(case: str, error: BaseException, reason: str) -> None:
    assert unavailable_reason(error) == reason
    # However deep the driver's error sits under other exceptions.
    try:
        try:
            raise error
        except BaseException as inner:
            raise ApiError(503, "wrapped") from inner
    except ApiError as outer:
        assert is_database_unavailable(outer)


BUGS = [
    ("syntax error", _wrapped(asyncpg.PostgresSyntaxError('syntax error at or near "x"'))),
    ("unique violation", IntegrityError("INSERT", {}, Exception("duplicate key"))),
    ("sqlite no such table", _sqlite("SQLITE_ERROR", "no such table: nowhere")),
    ("programming error", ProgrammingError("SELECT", {}, Exception("bad"))),
    ("missing file", FileNotFoundError("var/firemode.db")),
    ("plain bug", KeyError("oops")),
]


@pytest.mark.parametrize(("case", "error"), BUGS, ids=[c[0] for c in BUGS])
def test_bugs_are_not_outages(case: str, error: BaseException) -> None:
    assert unavailable_reason(error) is None


def _failing_app(error: BaseException) -> FastAPI:
    app = create_app(Settings())

    @app.get("/probe/fail")
    async def fail() -> None:
        raise error

    return app


@pytest.mark.parametrize(("case", "error", "reason"), UNAVAILABLE, ids=[c[0] for c in UNAVAILABLE])
async def test_every_outage_is_503_with_retry_after_logged_once(
    case: str, error: BaseException, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = _failing_app(error)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    lines: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: lines.append(JsonFormatter().format(record))  # type: ignore[method-assign]
    logging.getLogger("firemode").addHandler(handler)
    try:
        with caplog.at_level(logging.INFO):
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                response = await http.get("/probe/fail")
    finally:
        logging.getLogger("firemode").removeHandler(handler)
    [line] = lines
    assert json.loads(line)["transaction_id"] == response.headers["x-transaction-id"]
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    body = response.json()
    assert body["error_code"] == "FIRE-503"
    assert body["retryable"] is True
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [(r.getMessage(), getattr(r, "reason", None)) for r in warnings] == [
        ("database unavailable", reason)
    ]
    assert not any(r.exc_info for r in warnings)


async def test_a_bug_is_still_500(caplog: pytest.LogCaptureFixture) -> None:
    app = _failing_app(_wrapped(asyncpg.PostgresSyntaxError("syntax error")))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/probe/fail")
    assert response.status_code == 500
    assert response.json()["error_code"] == "FIRE-500"
