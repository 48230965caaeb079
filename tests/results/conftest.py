"""Helpers for the results-sync HTTP tests."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from src.app.sessions.models import TestSession

if TYPE_CHECKING:
    from tests.conftest import TestUser

# A fixed, past base keeps timestamps deterministic (and far from the 5-minute skew cap).
BASE = datetime(2026, 6, 1, 8, 0, 0, tzinfo=UTC)
HLC_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z/\d{4}$")


def hlc(seconds: float, counter: int = 0, base: datetime = BASE) -> str:
    """An HLC timestamp ``seconds`` after ``base``."""
    moment = base + timedelta(seconds=seconds)
    return f"{moment.strftime('%Y-%m-%dT%H:%M:%S')}.{moment.microsecond // 1000:03d}Z/{counter:04d}"


def hlc_from_now(seconds: float) -> str:
    return hlc(seconds, base=datetime.now(UTC))


def set_op(
    path: str, value: Any, ts: str | None = None, op_id: str | None = None
) -> dict[str, Any]:
    change: dict[str, Any] = {"op": "set", "path": path, "value": value}
    if ts is not None:
        change["ts"] = ts
    if op_id is not None:
        change["op_id"] = op_id
    return change


def del_op(path: str, ts: str | None = None, op_id: str | None = None) -> dict[str, Any]:
    change: dict[str, Any] = {"op": "delete", "path": path}
    if ts is not None:
        change["ts"] = ts
    if op_id is not None:
        change["op_id"] = op_id
    return change


@dataclass
class ResultsApi:
    client: httpx.AsyncClient
    app: FastAPI

    async def post(
        self,
        user: TestUser,
        session_id: uuid.UUID,
        changes: list[dict[str, Any]] | None = None,
        *,
        device_id: str | None = None,
        key: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> httpx.Response:
        if body is None:
            body = {"changes": changes or []}
            if device_id is not None:
                body["device_id"] = device_id
        headers = {**user.headers, "Idempotency-Key": key or str(uuid.uuid4())}
        return await self.client.post(
            f"/v1/tests/sessions/{session_id}/results", json=body, headers=headers
        )

    async def get(
        self,
        user: TestUser,
        session_id: uuid.UUID,
        *,
        since: int | None = None,
        limit: int | None = None,
    ) -> httpx.Response:
        params: dict[str, int] = {}
        if since is not None:
            params["since"] = since
        if limit is not None:
            params["limit"] = limit
        return await self.client.get(
            f"/v1/tests/sessions/{session_id}/results", params=params, headers=user.headers
        )

    async def state(self, user: TestUser, session_id: uuid.UUID) -> tuple[int, dict[str, Any]]:
        """(version, document) as the server reports them."""
        response = await self.get(user, session_id)
        assert response.status_code == 200, response.text
        body = response.json()
        return body["version"], body["document"]

    async def set_status(self, session_id: uuid.UUID, status: str) -> None:
        async with self.app.state.database.sessionmaker() as db:
            await db.execute(
                update(TestSession).where(TestSession.id == session_id).values(status=status)
            )
            await db.commit()

    async def metric(self, name: str, labels: str) -> float:
        response = await self.client.get("/metrics")
        assert response.status_code == 200
        pattern = re.compile(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", re.M)
        match = pattern.search(response.text)
        return float(match.group(1)) if match else 0.0


@pytest.fixture
def results_api(client: httpx.AsyncClient, app: FastAPI) -> ResultsApi:
    return ResultsApi(client, app)
