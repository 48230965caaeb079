"""The one classification of "the database is unavailable" (answered 503, never 500)."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError


def is_database_unavailable(exc: BaseException) -> bool:
    """Connection-level failures (refused, timed out, dropped) rather than bad queries."""
    if isinstance(exc, PoolTimeoutError | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError | PermissionError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    cause = exc.__cause__ or exc.__context__
    return cause is not None and cause is not exc and is_database_unavailable(cause)
