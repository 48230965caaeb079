"""The one classification of "the database is unavailable" (answered 503, never 500).

``unavailable_reason`` walks an exception and its causes and names the outage, or gives
None for anything else (a bad query, a constraint, a bug: those stay 500 or their own
status). It reads SQLSTATE codes (asyncpg and psycopg), SQLite's error names, and the
connection-level exceptions of the drivers and of SQLAlchemy's pool, so it does not
depend on which wrapper class SQLAlchemy happened to choose. See docs/operations.md.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine

# SQLSTATE (exact code, or its two-character class) -> reason.
_SQLSTATE_REASONS: dict[str, str] = {
    "08": "connection failure",
    "57P01": "server shutting down",
    "57P02": "server crashed",
    "57P03": "server starting up or shutting down",
    "57014": "statement timeout",
    "53100": "disk full",
    "53": "server out of resources",
    "58": "server I/O error",
    "25006": "read-only database",
    "40001": "serialization failure",
    "40P01": "deadlock",
    "55P03": "lock timeout",
}
# The ones after which the connection itself is gone: SQLAlchemy must discard the pool.
_DISCONNECT_SQLSTATES = ("08", "57P01", "57P02", "57P03")

_SQLITE_REASONS: dict[str, str] = {
    "SQLITE_BUSY": "database locked",
    "SQLITE_LOCKED": "database locked",
    "SQLITE_FULL": "disk full",
    "SQLITE_READONLY": "read-only database",
    "SQLITE_IOERR": "disk I/O error",
    "SQLITE_CANTOPEN": "cannot open the database file",
    "SQLITE_PROTOCOL": "database locked",
    "SQLITE_NOMEM": "out of memory",
}
# Driver messages for a connection lost without a SQLSTATE (asyncpg interface errors).
_LOST_CONNECTION_MESSAGES = (
    "connection is closed",
    "connection was closed",
    "underlying connection is closed",
)


def _sqlstate(exc: BaseException) -> str | None:
    for attribute in ("sqlstate", "pgcode"):
        value: Any = getattr(exc, attribute, None)
        if isinstance(value, str) and len(value) == 5:
            return value
    return None


def _reason_for_sqlstate(code: str) -> str | None:
    return _SQLSTATE_REASONS.get(code) or _SQLSTATE_REASONS.get(code[:2])


def _sqlite_reason(exc: sqlite3.Error) -> str | None:
    name = getattr(exc, "sqlite_errorname", None) or ""
    for prefix, reason in _SQLITE_REASONS.items():
        if name == prefix or name.startswith(prefix + "_"):
            return reason
    return None


def _own_reason(exc: BaseException) -> str | None:
    """The reason ``exc`` itself (not its causes) gives, if any."""
    if isinstance(exc, PoolTimeoutError):
        return "connection pool exhausted"
    code = _sqlstate(exc)
    if code is not None:
        return _reason_for_sqlstate(code)
    if isinstance(exc, sqlite3.Error):
        return _sqlite_reason(exc)
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionError):
        return "connection lost"
    if isinstance(exc, TimeoutError):
        return "connection timed out"
    if isinstance(exc, OSError) and not isinstance(
        exc, FileNotFoundError | PermissionError | IsADirectoryError | NotADirectoryError
    ):
        return "network error"
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return "connection lost"
    message = str(exc).lower()
    if type(exc).__name__.endswith("InterfaceError") and any(
        text in message for text in _LOST_CONNECTION_MESSAGES
    ):
        return "connection lost"
    if type(exc).__name__ == "InternalClientError" and "another operation" in message:
        # asyncpg's protocol was left half-way by a failure it saw on this connection
        # (seen when the server restarts): the connection is as good as lost.
        return "connection lost"
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not other for other in seen):
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def unavailable_reason(exc: BaseException) -> str | None:
    """Why the database cannot serve this request now (for the log), or None."""
    for link in _chain(exc):
        reason = _own_reason(link)
        if reason is not None:
            return reason
    return None


def is_database_unavailable(exc: BaseException) -> bool:
    """Connection-level and transient server failures rather than bad queries."""
    return unavailable_reason(exc) is not None


def is_lost_connection(exc: BaseException) -> bool:
    """Whether ``exc`` means the connection itself is gone (not just this statement)."""
    for link in _chain(exc):
        code = _sqlstate(link)
        if code is not None and code.startswith(_DISCONNECT_SQLSTATES):
            return True
        if isinstance(link, ConnectionError) or _own_reason(link) == "connection lost":
            return True
    return False


def _mark_disconnects(context: ExceptionContext) -> None:
    # SQLAlchemy then invalidates the whole pool (every connection opened before now is
    # replaced at its next checkout), so after an outage each pooled connection does not
    # cost a client one failed request. Free in steady state: it runs only on errors.
    if not context.is_disconnect and is_lost_connection(context.original_exception):
        context.is_disconnect = True


def install_disconnect_detection(engine: AsyncEngine) -> None:
    """Teach the engine every way its driver reports a lost connection."""
    event.listen(engine.sync_engine, "handle_error", _mark_disconnects)
