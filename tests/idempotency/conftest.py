"""A probe route on a fresh app instance, to drive the idempotency mechanism into states
the real routes cannot reach on demand (a crash mid-work, a request held in flight).

The probe does real work on the real database (it creates a test session named after the
request) so the tests can see whether that work was committed or rolled back.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from src.app.core.database import get_db
from src.app.core.errors import problem_response
from src.app.core.idempotency import IdempotentRequest, idempotency_optional, idempotency_required
from src.app.core.responses import json_response
from src.app.core.schemas import RequestModel
from src.app.core.settings import Settings
from src.app.core.tenancy import Principal
from src.app.identity.dependencies import require_writer
from src.app.main import create_app
from src.app.sessions.models import TestSession


class ProbeIn(RequestModel):
    name: str
    mode: Literal["ok", "wait", "refuse"] = "ok"


class ProbeOut(BaseModel):
    id: uuid.UUID
    name: str
    call: int


@dataclass
class ProbeState:
    calls: int = 0
    explode_next: bool = False
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    gate: asyncio.Event = field(default_factory=asyncio.Event)


def probe_router(state: ProbeState) -> APIRouter:
    router = APIRouter(prefix="/v1/probe")

    async def handle(
        body: ProbeIn, principal: Principal, db: AsyncSession, idem: IdempotentRequest
    ) -> Response:
        async def work() -> Response:
            state.calls += 1
            row = TestSession(
                organisation_id=principal.organisation_id,
                session_name=body.name,
                created_by=principal.user_id,
            )
            db.add(row)
            await db.flush()
            if state.explode_next:
                state.explode_next = False
                raise RuntimeError("the probe crashed mid-work")
            if body.mode == "wait":
                state.entered.set()
                await state.gate.wait()
            if body.mode == "refuse":
                return problem_response(409, "The probe refuses")
            return json_response(
                ProbeOut(id=row.id, name=body.name, call=state.calls),
                status_code=201,
                headers={"Location": f"/v1/probe/things/{row.id}"},
            )

        return await idem.run(principal, work)

    @router.post("/things", status_code=201)
    async def create_thing(
        body: ProbeIn,
        principal: Principal = Depends(require_writer),
        db: AsyncSession = Depends(get_db),
        idem: IdempotentRequest = Depends(idempotency_required),
    ) -> Response:
        return await handle(body, principal, db, idem)

    @router.post("/optional", status_code=201)
    async def create_optional(
        body: ProbeIn,
        principal: Principal = Depends(require_writer),
        db: AsyncSession = Depends(get_db),
        idem: IdempotentRequest = Depends(idempotency_optional),
    ) -> Response:
        return await handle(body, principal, db, idem)

    return router


@dataclass
class Probe:
    app: FastAPI
    client: httpx.AsyncClient
    state: ProbeState

    async def count(self, name: str) -> int:
        """How many sessions the probe committed under ``name``."""
        async with self.app.state.database.sessionmaker() as db:
            found = await db.scalar(
                select(func.count())
                .select_from(TestSession)
                .where(TestSession.session_name == name)
            )
        return int(found or 0)


@pytest.fixture
async def probe() -> AsyncIterator[Probe]:
    app = create_app(Settings())
    state = ProbeState()
    app.include_router(probe_router(state))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        yield Probe(app, client, state)
    await app.state.database.dispose()
