"""FR-7: the one pagination helper. Keyset on ``created_at DESC, id DESC``, newest first."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fastapi import Query, Request
from pydantic import BaseModel
from sqlalchemy import Select, Uuid, literal, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.core.cursor import (
    CursorPosition,
    InvalidCursor,
    decode_cursor,
    encode_cursor,
    scope_digest,
)
from src.app.core.database import UTCDateTime
from src.app.core.errors import ApiError, FieldError
from src.app.core.settings import Settings

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
ItemT = TypeVar("ItemT")


class Page(BaseModel, Generic[ItemT]):
    data: list[ItemT]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class PageParams:
    limit: int
    cursor: str | None
    settings: Settings


def page_params(
    request: Request,
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Page size, 1-500."),
    cursor: str | None = Query(
        None, max_length=2048, description="Opaque cursor from the previous page's next_cursor."
    ),
) -> PageParams:
    return PageParams(limit=limit, cursor=cursor or None, settings=request.app.state.settings)


def _cursor_key(settings: Settings) -> bytes:
    # Derived from the signing secret, so rotating the secret invalidates old cursors too.
    return hashlib.sha256(b"firemode-cursor-key\x00" + settings.signing_secret().encode()).digest()


async def paginate(
    session: AsyncSession,
    statement: Select[Any],
    model: Any,
    params: PageParams,
    *,
    endpoint: str,
    filters: dict[str, Any],
    organisation_id: uuid.UUID,
) -> tuple[Sequence[Any], str | None]:
    """Run ``statement`` (already scoped and filtered) one page at a time.

    Returns the page's rows and the cursor of the next page, which is ``None`` exactly when
    no row follows (``limit + 1`` rows are fetched to know).
    """
    key = _cursor_key(params.settings)
    scope = scope_digest(endpoint, filters, organisation_id)
    if params.cursor is not None:
        try:
            position = decode_cursor(key, params.cursor, scope)
        except InvalidCursor as exc:
            raise ApiError(
                400, str(exc), errors=[FieldError(parameter="cursor", detail=str(exc))]
            ) from exc
        statement = statement.where(
            tuple_(model.created_at, model.id)
            < tuple_(literal(position.created_at, UTCDateTime()), literal(position.id, Uuid()))
        )
    statement = statement.order_by(model.created_at.desc(), model.id.desc()).limit(params.limit + 1)
    rows = (await session.execute(statement)).scalars().all()
    if len(rows) <= params.limit:
        return rows, None
    rows = rows[: params.limit]
    last = rows[-1]
    return rows, encode_cursor(key, CursorPosition(last.created_at, last.id), scope)
