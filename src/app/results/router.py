"""Results sync (FR-4)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/tests/sessions", tags=["results"])
