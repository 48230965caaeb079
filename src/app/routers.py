"""Every domain's router, in one list, so the app factory and tests agree on them."""

from __future__ import annotations

from fastapi import APIRouter

from src.app.audit.router import router as audit_router
from src.app.buildings.router import router as buildings_router
from src.app.defects.router import router as defects_router
from src.app.defects.service import raise_session_defects
from src.app.evidence.router import UPLOAD_PATH
from src.app.evidence.router import router as evidence_router
from src.app.identity.router import auth_router, users_router
from src.app.operations.router import router as operations_router
from src.app.reports.router import router as reports_router
from src.app.results.router import router as results_router
from src.app.rules.router import router as rules_router
from src.app.schedule import hooks as schedule_hooks
from src.app.schedule.router import router as schedule_router
from src.app.sessions.hooks import on_session_completed
from src.app.sessions.router import router as sessions_router
from src.app.webhooks.router import router as webhooks_router

OPERATIONS_ROUTERS: list[APIRouter] = [operations_router]
# Results first: before sessions, so that "/{id}/results" is not shadowed by a sessions
# route, and before everything, because routes are matched in order and results sync is
# the busiest route by far. Evidence before buildings and sessions: it serves
# "/tests/sessions/{id}/evidence" and "/assets/{id}/evidence".
API_ROUTERS: list[APIRouter] = [
    results_router,
    auth_router,
    users_router,
    evidence_router,
    buildings_router,
    rules_router,
    sessions_router,
    defects_router,
    webhooks_router,
    audit_router,
    reports_router,
    schedule_router,
]

# Completing a session raises the defects its evaluation implies (sessions sit below
# defects, so they call back through this hook rather than importing defects).
on_session_completed(raise_session_defects)

# Routes that stream their own request body (not JSON; their own size limit).
STREAMED_BODY_PATHS: frozenset[str] = frozenset({UPLOAD_PATH})

# The schedule follows assets, building states and sessions through their hooks.
schedule_hooks.register()
