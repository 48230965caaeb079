"""Buildings and their equipment register."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["buildings"])
