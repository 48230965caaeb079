"""The list query of test sessions, built without I/O, so tests can EXPLAIN it."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Select, select

from src.app.core.tenancy import Principal, scoped
from src.app.sessions.models import SessionStatus, TestSession

SESSIONS_ENDPOINT = "GET /v1/tests/sessions"


@dataclass(frozen=True, slots=True)
class SessionFilters:
    statuses: tuple[SessionStatus, ...] = ()
    building_id: uuid.UUID | None = None
    date_from: date | None = None
    date_to: date | None = None

    @classmethod
    def normalised(
        cls,
        statuses: Iterable[SessionStatus] | None = None,
        building_id: uuid.UUID | None = None,
        date_from: date | None = None,
        date_to: date | None = None,
    ) -> SessionFilters:
        # One spelling per filter: ?status=b&status=a&status=a is ?status=a&status=b.
        order = list(SessionStatus)
        unique = sorted(set(statuses or ()), key=order.index)
        return cls(tuple(unique), building_id, date_from, date_to)

    def binding(self) -> dict[str, Any]:
        """What a cursor of this list is bound to."""
        return {
            "status": [s.value for s in self.statuses] or None,
            "building_id": self.building_id,
            "date_from": self.date_from,
            "date_to": self.date_to,
        }


def list_sessions(principal: Principal, filters: SessionFilters) -> Select[Any]:
    statement = scoped(select(TestSession), TestSession, principal)
    if len(filters.statuses) == 1:
        # Equality, so the (organisation_id, status, created_at, id) index gives the order.
        statement = statement.where(TestSession.status == filters.statuses[0].value)
    elif filters.statuses:
        statement = statement.where(TestSession.status.in_([s.value for s in filters.statuses]))
    if filters.building_id is not None:
        statement = statement.where(TestSession.building_id == filters.building_id)
    # Date filters are on scheduled_for (what an office plans by), both ends inclusive;
    # a session with no scheduled day never matches a date filter.
    if filters.date_from is not None:
        statement = statement.where(TestSession.scheduled_for >= filters.date_from)
    if filters.date_to is not None:
        statement = statement.where(TestSession.scheduled_for <= filters.date_to)
    return statement
