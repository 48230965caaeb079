"""Every domain's router, in one list, so the app factory and tests agree on them."""

from __future__ import annotations

from fastapi import APIRouter

from src.app.buildings.router import router as buildings_router
from src.app.identity.router import auth_router, users_router
from src.app.operations.router import router as operations_router
from src.app.results.router import router as results_router
from src.app.rules.router import router as rules_router
from src.app.schedule import hooks as schedule_hooks
from src.app.schedule.router import router as schedule_router
from src.app.sessions.router import router as sessions_router

OPERATIONS_ROUTERS: list[APIRouter] = [operations_router]
# Results before sessions: "/{id}/results" must not be shadowed by a sessions route.
API_ROUTERS: list[APIRouter] = [
    auth_router,
    users_router,
    buildings_router,
    rules_router,
    results_router,
    sessions_router,
    schedule_router,
]

# Higher domains follow lower ones' changes through hooks (no upward imports).
schedule_hooks.register()
