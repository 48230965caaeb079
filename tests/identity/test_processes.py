"""Revocation across processes: two real uvicorn servers on one PostgreSQL database (and,
in the second variant, one Redis). What is revoked through one is refused by the other on
the very next request."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from src.app.identity.revocation import ALL_REVOKED, TOKEN_REVOKED, USER_DEACTIVATED
from tests.conftest import TEST_SECRET
from tests.identity.conftest import REDIS_URL, assert_401, closed_port, login, redis_prefix

ROOT = Path(__file__).resolve().parents[2]
ME = "/v1/users/me"


class Server:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = closed_port()
        self.log = log
        self._log_file = log.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "src.app.main:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-access-log",
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited: {self.log.read_text()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError(f"server did not start: {self.log.read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log_file.close()


@pytest.fixture(scope="module")
def two_servers(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, request
) -> Iterator[tuple[Server, Server]]:
    """Started once per variant (a server takes seconds to import on a busy machine)."""
    assert database_url.startswith("postgresql"), "this test needs the PostgreSQL backend"
    tmp_path = tmp_path_factory.mktemp(f"servers-{request.param}")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("FIREMODE_") or key.startswith("FIREMODE_TEST_")
    }
    env.update(
        FIREMODE_DATABASE_URL=database_url,
        FIREMODE_JWT_SECRET=TEST_SECRET,
        FIREMODE_ENV="test",
        FIREMODE_LOG_LEVEL="WARNING",
        # These tests are about theft detection across processes: no retry grace.
        FIREMODE_REFRESH_REUSE_GRACE_SECONDS="0",
    )
    if request.param == "redis":
        env.update(FIREMODE_REDIS_URL=REDIS_URL, FIREMODE_REDIS_KEY_PREFIX=redis_prefix())
    servers = (Server(env, tmp_path / "a.log"), Server(env, tmp_path / "b.log"))
    try:
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.mark.postgres
@pytest.mark.parametrize("two_servers", ["database", "redis"], indirect=True)
async def test_revocation_through_one_process_is_enforced_by_the_other(
    two_servers: tuple[Server, Server], make_tenant
):
    first, second = two_servers
    tenant = await make_tenant()
    async with (
        httpx.AsyncClient(base_url=first.url, timeout=10) as a,
        httpx.AsyncClient(base_url=second.url, timeout=10) as b,
    ):
        # Logout through A: B refuses the token on its very next request.
        tokens = await login(a, tenant.technician.email)
        assert (await b.get(ME, headers=tokens.headers)).status_code == 200
        assert (await a.post("/v1/auth/logout", headers=tokens.headers)).status_code == 204
        assert_401(await b.get(ME, headers=tokens.headers), TOKEN_REVOKED)

        # Revoke-all through A, for a session that B issued.
        viewer = await login(b, tenant.viewer.email)
        assert (await b.get(ME, headers=viewer.headers)).status_code == 200
        revoked = await a.post(
            "/v1/auth/revocations",
            json={"user_id": str(tenant.viewer.id)},
            headers=tenant.admin.headers,
        )
        assert revoked.status_code == 201
        assert_401(await b.get(ME, headers=viewer.headers), ALL_REVOKED)

        # Deactivation through B: A refuses at once.
        again = await login(a, tenant.technician.email)
        assert (await a.get(ME, headers=again.headers)).status_code == 200
        off = await b.patch(
            f"/v1/users/{tenant.technician.id}",
            json={"is_active": False},
            headers=tenant.admin.headers,
        )
        assert off.status_code == 200
        assert_401(await a.get(ME, headers=again.headers), USER_DEACTIVATED)

        # Refresh reuse across processes: rotated through A, replayed through B.
        admin = await login(a, tenant.admin.email)
        rotated = await a.post("/v1/auth/refresh", json={"refresh_token": admin.refresh})
        assert rotated.status_code == 200
        replay = await b.post("/v1/auth/refresh", json={"refresh_token": admin.refresh})
        assert_401(replay)
        new_access = {"Authorization": f"Bearer {rotated.json()['access_token']}"}
        assert_401(await a.get(ME, headers=new_access), TOKEN_REVOKED)


@pytest.mark.postgres
@pytest.mark.parametrize("two_servers", ["database", "redis"], indirect=True)
async def test_concurrent_refresh_of_one_token_across_processes(
    two_servers: tuple[Server, Server], make_tenant
):
    """Both processes get the same refresh token at once: exactly one rotation wins, the
    other is treated as reuse, and the family ends revoked either way."""
    first, second = two_servers
    tenant = await make_tenant()
    async with (
        httpx.AsyncClient(base_url=first.url, timeout=10) as a,
        httpx.AsyncClient(base_url=second.url, timeout=10) as b,
    ):
        tokens = await login(a, tenant.viewer.email)
        body = {"refresh_token": tokens.refresh}
        one, two = await asyncio.gather(
            a.post("/v1/auth/refresh", json=body), b.post("/v1/auth/refresh", json=body)
        )
        assert sorted([one.status_code, two.status_code]) == [200, 401]
        winner = one if one.status_code == 200 else two
        headers = {"Authorization": f"Bearer {winner.json()['access_token']}"}
        assert_401(await a.get(ME, headers=headers), TOKEN_REVOKED)
        assert_401(
            await b.post("/v1/auth/refresh", json={"refresh_token": winner.json()["refresh_token"]})
        )
