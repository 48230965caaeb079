"""Every domain's router, in one list, so the app factory and tests agree on them."""

from __future__ import annotations

from fastapi import APIRouter

from src.app.audit.router import router as audit_router
from src.app.buildings.router import router as buildings_router
from src.app.identity.router import auth_router, users_router
from src.app.operations.router import router as operations_router
from src.app.results.router import router as results_router
from src.app.sessions.router import router as sessions_router

OPERATIONS_ROUTERS: list[APIRouter] = [operations_router]
# Results before sessions: "/{id}/results" must not be shadowed by a sessions route.
API_ROUTERS: list[APIRouter] = [
    auth_router,
    users_router,
    buildings_router,
    results_router,
    sessions_router,
    audit_router,
]
