"""Every domain's router, in one list, so the app factory and tests agree on them."""

from __future__ import annotations

from fastapi import APIRouter

from src.app.operations.router import router as operations_router

OPERATIONS_ROUTERS: list[APIRouter] = [operations_router]
API_ROUTERS: list[APIRouter] = []
