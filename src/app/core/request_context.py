"""Per-request context (the transaction id) that logging and errors read without plumbing."""

from __future__ import annotations

import uuid
from contextvars import ContextVar

_transaction_id: ContextVar[str | None] = ContextVar("firemode_transaction_id", default=None)


def current_transaction_id() -> str:
    """The current request's transaction id; a fresh one outside any request."""
    value = _transaction_id.get()
    return value if value is not None else str(uuid.uuid4())


def peek_transaction_id() -> str | None:
    return _transaction_id.get()


def set_transaction_id(value: str | None) -> object:
    return _transaction_id.set(value)


def reset_transaction_id(token: object) -> None:
    _transaction_id.reset(token)  # type: ignore[arg-type]
