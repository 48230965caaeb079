"""The one pagination helper. Keyset on ``created_at DESC, id DESC``, newest first.

Every list endpoint takes ``params: PageParams = Depends(page_params)``, builds its scoped
and filtered ``select(Model)``, and hands it to ``paginate`` with the endpoint's name and
its normalised filters, which the cursor is bound to. Each list's table needs an index
``(organisation_id, <equality filters>, created_at DESC, id DESC)`` so that a page, deep
or not, is one index range scan with no sort.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fastapi import Query, Request
from pydantic import BaseModel, Field
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
    """One page of a list, newest first."""

    data: list[ItemT]
    next_cursor: str | None = Field(
        description=(
            "Pass as `cursor` to get the next page. `null` exactly when no row follows "
            "(last page, empty list, or a page ending on the last row)."
        )
    )


@dataclass(frozen=True, slots=True)
class PageParams:
    limit: int
    cursor: str | None
    settings: Settings


def page_params(
    request: Request,
    limit: int = Query(
        DEFAULT_LIMIT,
        ge=1,
        le=MAX_LIMIT,
        description=f"Page size, 1-{MAX_LIMIT} (default {DEFAULT_LIMIT}); outside → 422.",
    ),
    cursor: str | None = Query(
        None,
        description=(
            "Opaque cursor from the previous page's `next_cursor`, valid only for the same "
            "list (endpoint, filters, organisation); otherwise 400. Empty means first page."
        ),
    ),
) -> PageParams:
    # No max_length here: an over-long cursor is a forged one, answered 400 like the rest.
    return PageParams(limit=limit, cursor=cursor or None, settings=request.app.state.settings)


def _cursor_key(settings: Settings) -> bytes:
    # Derived from the signing secret, so rotating the secret invalidates old cursors too.
    return hashlib.sha256(b"firemode-cursor-key\x00" + settings.signing_secret().encode()).digest()


def keyset_page(
    statement: Select[Any], model: Any, position: CursorPosition | None, limit: int
) -> Select[Any]:
    """The SQL of one page: rows strictly after ``position``, newest first, ``limit + 1`` of
    them (the extra row tells whether another page follows). Pure; exposed so tests can
    EXPLAIN exactly what ``paginate`` runs."""
    if position is not None:
        # A row-value comparison, so PostgreSQL uses it as an index condition.
        statement = statement.where(
            tuple_(model.created_at, model.id)
            < tuple_(literal(position.created_at, UTCDateTime()), literal(position.id, Uuid()))
        )
    return statement.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)


def cursor_position(
    params: PageParams,
    *,
    endpoint: str,
    filters: Mapping[str, Any],
    organisation_id: uuid.UUID,
) -> CursorPosition | None:
    """The position ``params.cursor`` points at, or 400 if it was not issued for this list."""
    if params.cursor is None:
        return None
    scope = scope_digest(endpoint, filters, organisation_id)
    try:
        return decode_cursor(_cursor_key(params.settings), params.cursor, scope)
    except InvalidCursor as exc:
        raise ApiError(
            400, str(exc), errors=[FieldError(parameter="cursor", detail=str(exc))]
        ) from exc


def make_cursor(
    settings: Settings,
    position: CursorPosition,
    *,
    endpoint: str,
    filters: Mapping[str, Any],
    organisation_id: uuid.UUID,
) -> str:
    """A cursor for ``position`` in the given list (what ``paginate`` hands out)."""
    scope = scope_digest(endpoint, filters, organisation_id)
    return encode_cursor(_cursor_key(settings), position, scope)


async def paginate(
    db: AsyncSession,
    statement: Select[Any],
    model: Any,
    params: PageParams,
    *,
    endpoint: str,
    filters: Mapping[str, Any],
    organisation_id: uuid.UUID,
) -> tuple[Sequence[Any], str | None]:
    """Run ``statement`` (``select(model)``, already scoped and filtered) one page at a time.

    ``endpoint`` names the list and ``filters`` are its normalised filter values: a cursor
    is valid only with the same three and the same organisation. Returns the page's rows and
    the next page's cursor, which is ``None`` exactly when no row follows.
    """
    binding: dict[str, Any] = {
        "endpoint": endpoint,
        "filters": filters,
        "organisation_id": organisation_id,
    }
    position = cursor_position(params, **binding)
    page = keyset_page(statement, model, position, params.limit)
    rows = (await db.execute(page)).scalars().all()
    if len(rows) <= params.limit:
        return rows, None
    rows = rows[: params.limit]
    last = rows[-1]
    return rows, make_cursor(params.settings, CursorPosition(last.created_at, last.id), **binding)
