"""The route dependencies: a key that is required, or honoured when sent."""

from __future__ import annotations

from fastapi import Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.core.database import get_db
from src.app.core.idempotency.headers import IDEMPOTENCY_HEADER, header_key
from src.app.core.idempotency.machine import IdempotentRequest

_KEY_DESCRIPTION = (
    "1-255 printable ASCII characters, bare or as a quoted structured-field string. "
    "Scoped to the caller and the request path; a retry with the same key and body "
    "replays the stored response with `Idempotent-Replayed: true`."
)


async def required_idempotency_key(
    request: Request,
    # Optional for FastAPI so that a missing key is our 400, not a generic 422.
    idempotency_key: str | None = Header(
        default=None,
        alias=IDEMPOTENCY_HEADER,
        description="**Required** (missing: 400). " + _KEY_DESCRIPTION,
    ),
) -> str:
    """The parsed key of a route where it is mandatory (missing → 400), without a
    database session: for a route that claims and completes the key in its own
    statement (results sync)."""
    key = header_key(request, required=True)
    assert key is not None  # required=True raises instead
    return key


async def idempotency_required(
    request: Request,
    db: AsyncSession = Depends(get_db),
    key: str = Depends(required_idempotency_key),
) -> IdempotentRequest:
    """Dependency for routes where the key is mandatory (missing → 400)."""
    return IdempotentRequest(request, db, key)


async def idempotency_optional(
    request: Request,
    db: AsyncSession = Depends(get_db),
    idempotency_key: str | None = Header(
        default=None, alias=IDEMPOTENCY_HEADER, description=_KEY_DESCRIPTION
    ),
) -> IdempotentRequest:
    """Dependency for routes that honour a key when one is sent."""
    return IdempotentRequest(request, db, header_key(request, required=False))
