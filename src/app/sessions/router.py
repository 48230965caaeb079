"""Test sessions."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/tests/sessions", tags=["test sessions"])
