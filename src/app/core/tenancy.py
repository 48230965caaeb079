"""Tenancy: who the caller is, and the one scope every tenant-owned query goes through.

Every user belongs to exactly one organisation; every row a user can see carries that
organisation's id. Another organisation's object is reported as 404, never 403, so that
its existence does not leak.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.core.errors import ApiError

T = TypeVar("T")


class Role(StrEnum):
    admin = "admin"
    technician = "technician"
    viewer = "viewer"


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller."""

    user_id: uuid.UUID
    organisation_id: uuid.UUID
    role: Role
    jti: str
    token_expires_at: datetime  # of the access token that authenticated this request


def scoped(statement: Select[Any], model: Any, principal: Principal) -> Select[Any]:
    """The tenancy scope: every query of a tenant-owned table goes through this."""
    return statement.where(model.organisation_id == principal.organisation_id)


async def get_owned(
    db: AsyncSession,
    model: type[T],
    object_id: uuid.UUID,
    principal: Principal,
    *,
    what: str,
    for_update: bool = False,
) -> T:
    """Fetch one tenant-owned row; another organisation's row is a 404, never a 403."""
    statement = scoped(select(model), model, principal).where(
        model.id == object_id  # type: ignore[attr-defined]
    )
    if for_update:
        statement = statement.with_for_update()
    found = (await db.execute(statement)).scalar_one_or_none()
    if found is None:
        raise ApiError(404, f"{what} {object_id} does not exist")
    return found  # type: ignore[no-any-return]
