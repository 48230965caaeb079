"""Helpers for the evidence tests: a session to attach to, and an upload call."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from src.app.core.settings import Settings
from src.app.evidence.models import Evidence
from tests.buildings.helpers import new_asset, new_building, new_session
from tests.conftest import Tenant, TestUser
from tests.evidence import files
from tests.evidence.s3 import moto_server


@dataclass
class Site:
    tenant: Tenant
    building_id: str
    session_id: str
    asset_id: str


@dataclass
class EvidenceApi:
    client: httpx.AsyncClient
    app: FastAPI

    @property
    def root(self) -> Path:
        settings: Settings = self.app.state.settings
        return settings.evidence_dir

    async def upload(
        self,
        user: TestUser,
        session_id: str,
        data: bytes,
        *,
        key: str | None = None,
        filename: str = "photo.jpg",
        sha256: str | None = None,
        kind: str = "photo",
        headers: dict[str, str] | None = None,
        **fields: Any,
    ) -> httpx.Response:
        form = {
            "session_id": session_id,
            "kind": kind,
            "sha256": sha256 or files.sha256(data),
            **{name: str(value) for name, value in fields.items()},
        }
        all_headers = {**user.headers, "Idempotency-Key": key or str(uuid.uuid4())}
        all_headers.update(headers or {})
        return await self.client.post(
            "/v1/evidence",
            data=form,
            files={"file": (filename, data, "application/octet-stream")},
            headers=all_headers,
        )

    def stored_files(self) -> list[Path]:
        """Every file under the evidence directory (blobs, thumbnails, staging)."""
        return sorted(p for p in self.root.rglob("*") if p.is_file())

    async def count(self, organisation_id: uuid.UUID) -> int:
        async with self.app.state.database.sessionmaker() as db:
            value = await db.scalar(
                select(func.count())
                .select_from(Evidence)
                .where(Evidence.organisation_id == organisation_id)
            )
        return int(value or 0)


@pytest.fixture
def evidence_dir(app: FastAPI, tmp_path: Path) -> Iterator[Path]:
    """Each test gets its own evidence directory (and a store built for it)."""
    original: Settings = app.state.settings
    app.state.settings = original.model_copy(update={"evidence_dir": tmp_path / "evidence"})
    app.state.evidence_store = None
    try:
        yield tmp_path / "evidence"
    finally:
        app.state.settings = original
        app.state.evidence_store = None


@pytest.fixture
def evidence_api(client: httpx.AsyncClient, app: FastAPI, evidence_dir: Path) -> EvidenceApi:
    return EvidenceApi(client, app)


@pytest.fixture
async def site(client: httpx.AsyncClient, make_tenant: Any) -> AsyncIterator[Site]:
    tenant = await make_tenant()
    building = await new_building(client, tenant.admin)
    session = await new_session(client, tenant.technician, building["id"])
    asset = await new_asset(client, tenant.admin, building["id"])
    yield Site(tenant, building["id"], session["id"], asset["id"])


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real S3-compatible server (moto) for the whole run."""
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as url:
        yield url
