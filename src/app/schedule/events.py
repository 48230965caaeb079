"""The schedule's webhook event: ``schedule.out_of_tolerance``, once per occurrence."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from src.app.core import outbox

OUT_OF_TOLERANCE = "schedule.out_of_tolerance"


def payload(row: dict[str, Any]) -> dict[str, Any]:
    """The event's JSON body, from an occurrence row."""
    done_on = row.get("done_on")
    return {
        "occurrence_id": str(row["id"]),
        "building_id": str(row["building_id"]),
        "asset_id": str(row["asset_id"]),
        "rule_code": row["rule_code"],
        "frequency": row["frequency"],
        "due_on": row["due_on"].isoformat(),
        "window_start": row["window_start"].isoformat(),
        "window_end": row["window_end"].isoformat(),
        "done_on": done_on.isoformat() if done_on else None,
        "done_session_id": str(row["done_session_id"]) if row.get("done_session_id") else None,
    }


def out_of_tolerance(db: AsyncSession, *, row: dict[str, Any], at: datetime) -> None:
    """Writes the event to the outbox, in the caller's transaction."""
    outbox.emit(
        db,
        organisation_id=row["organisation_id"],
        event_type=OUT_OF_TOLERANCE,
        payload=payload(row),
        at=at,
    )
