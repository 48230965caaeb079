"""Helpers for the identity tests: clients with their own client address (so that login
throttling never couples two tests), apps with their own settings, Redis prefixes."""

from __future__ import annotations

import itertools
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from src.app.core.settings import Settings
from src.app.main import create_app
from tests.conftest import TEST_PASSWORD

REDIS_URL = os.environ.get("FIREMODE_TEST_REDIS_URL") or "redis://127.0.0.1:6379/15"
# Every key this run writes starts with this; each test adds its own part.
RUN_PREFIX = f"firemode-test:{uuid.uuid4().hex[:12]}:"

_addresses = itertools.count(1)


def next_client_address() -> str:
    n = next(_addresses)
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def closed_port() -> int:
    """A local TCP port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def client_for(app: FastAPI, address: str | None = None) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address or next_client_address(), 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Like ``client``, but from a client address of its own."""
    async with client_for(app) as client:
        yield client


@dataclass
class Tokens:
    access: str
    refresh: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}


async def login(client: httpx.AsyncClient, email: str, password: str = TEST_PASSWORD) -> Tokens:
    response = await client.post("/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    body = response.json()
    return Tokens(body["access_token"], body["refresh_token"])


def assert_401(response: httpx.Response, detail: str | None = None) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["error_code"] == "FIRE-401"
    assert body["retryable"] is False
    assert response.headers["content-type"] == "application/problem+json"
    assert body["transaction_id"] == response.headers["x-transaction-id"]
    if detail is not None:
        assert body["detail"] == detail


AppFactory = Callable[..., FastAPI]


@pytest.fixture
async def make_app() -> AsyncIterator[AppFactory]:
    """``make_app(**settings)``: an app of its own on the test database (env settings plus
    the overrides). Its engine and Redis client are closed after the test."""
    apps: list[FastAPI] = []

    def factory(**overrides: Any) -> FastAPI:
        app = create_app(Settings(**overrides))
        apps.append(app)
        return app

    yield factory
    for app in apps:
        await app.state.database.dispose()
        await app.state.revocation_checker.aclose()


def redis_prefix() -> str:
    return f"{RUN_PREFIX}{uuid.uuid4().hex[:8]}:"


@pytest.fixture(scope="session", autouse=True)
async def redis_cleanup() -> AsyncIterator[None]:
    """Deletes this run's keys at the end (they all expire by themselves anyway)."""
    yield
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=RUN_PREFIX + "*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def redis_client(redis_cleanup: None) -> AsyncIterator[Any]:
    """A plain client on the test Redis, to look at what the app wrote."""
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()
