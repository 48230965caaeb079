"""Helpers shared by the benchmarks and the live-server tests.

- a throwaway PostgreSQL database (created, migrated, dropped),
- a seeded organisation with one technician and a real access token,
- a real ``uvicorn`` server in a subprocess, with ``--workers N``, waited on until
  ready and always stopped.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from sqlalchemy import make_url

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SERVER_URL_ENV = "FIREMODE_BENCH_DATABASE_URL"
DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


# --------------------------------------------------------------------------- database


@dataclass(frozen=True)
class ThrowawayDatabase:
    name: str
    url: str
    """SQLAlchemy URL of the new database (``postgresql+asyncpg://...``)."""
    admin_dsn: str
    """asyncpg DSN of the server's maintenance database, used to create and drop it."""


def create_database(server_url: str, prefix: str = "fm_bench") -> ThrowawayDatabase:
    """Create an empty database on the PostgreSQL server named by ``server_url``."""
    import asyncpg

    url = make_url(server_url)
    admin_dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        connection = await asyncpg.connect(admin_dsn, timeout=10)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    asyncio.run(create())
    database_url = (url.set(drivername="postgresql+asyncpg", database=name)).render_as_string(
        hide_password=False
    )
    return ThrowawayDatabase(name=name, url=database_url, admin_dsn=admin_dsn)


def drop_database(database: ThrowawayDatabase) -> None:
    import asyncpg

    async def drop() -> None:
        connection = await asyncpg.connect(database.admin_dsn, timeout=10)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{database.name}" WITH (FORCE)')
        finally:
            await connection.close()

    asyncio.run(drop())


@contextmanager
def throwaway_database(server_url: str | None = None) -> Iterator[ThrowawayDatabase]:
    """A fresh database migrated to head; dropped afterwards whatever happens."""
    from src.app.core import migrations

    database = create_database(server_url or os.environ.get(SERVER_URL_ENV, DEFAULT_SERVER_URL))
    try:
        migrations.upgrade(database.url)
        yield database
    finally:
        drop_database(database)


# --------------------------------------------------------------------------- seed data


@dataclass(frozen=True)
class SeededUser:
    organisation_id: uuid.UUID
    user_id: uuid.UUID
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def seed_technician(
    database_url: str, jwt_secret: str, *, token_ttl_seconds: int = 2 * 3600
) -> SeededUser:
    """An organisation with one technician, and a real access token for them.

    The token comes from ``issue_access_token`` with the server's secret, so the server
    verifies it for real (signature, claims) and runs its revocation check on it.
    """
    from src.app.core.database import Database
    from src.app.core.settings import Settings
    from src.app.core.tenancy import Role
    from src.app.identity.models import Organisation, User
    from src.app.identity.passwords import hash_password_sync
    from src.app.identity.tokens import issue_access_token

    settings = Settings(
        database_url=database_url,
        jwt_secret=jwt_secret,
        access_token_ttl_seconds=token_ttl_seconds,
        env="test",
    )
    suffix = uuid.uuid4().hex[:10]
    organisation = Organisation(id=uuid.uuid4(), name=f"Bench org {suffix}")
    user = User(
        id=uuid.uuid4(),
        organisation_id=organisation.id,
        email=f"bench-technician-{suffix}@firemode.test",
        password_hash=hash_password_sync(secrets.token_urlsafe(24)),
        role=Role.technician.value,
    )
    database = Database(database_url)
    try:
        async with database.sessionmaker() as db:
            db.add(organisation)
            await db.flush()
            db.add(user)
            await db.commit()
    finally:
        await database.dispose()
    # Issued a second after the row exists, well clear of any revoke-all comparison.
    issued = issue_access_token(
        settings,
        user_id=user.id,
        organisation_id=organisation.id,
        role=Role.technician.value,
        now=datetime.now(UTC),
    )
    return SeededUser(organisation.id, user.id, user.email, issued.token)


def new_jwt_secret() -> str:
    return secrets.token_urlsafe(48)


# --------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerFailed(RuntimeError):
    """The server exited or never became ready; the message carries its log tail."""


class UvicornServer:
    """``python -m uvicorn <app> --workers N`` in its own process group.

    Access logs are off (``--no-access-log``) and uvicorn logs only warnings, so
    logging costs nothing per request. ``stop()`` always runs on ``__exit__``.
    """

    def __init__(
        self,
        app: str,
        *,
        workers: int = 1,
        env: Mapping[str, str | None] | None = None,
        port: int | None = None,
        ready_path: str = "/health/ready",
        extra_args: Sequence[str] = (),
    ) -> None:
        self.app = app
        self.workers = workers
        self.port = port or free_port()
        self.ready_path = ready_path
        # A None value removes the variable from the inherited environment.
        merged: dict[str, str | None] = {**os.environ, **(env or {})}
        self.env = {k: v for k, v in merged.items() if v is not None}
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115  (closed in stop())
            prefix="firemode-server-", suffix=".log", delete=False
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> str:
        return self._log.name

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            self.app,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--no-access-log",
            "--log-level",
            "warning",
            *self.extra_args,
        ]

    def start(self, timeout: float = 60.0) -> UvicornServer:
        self.process = subprocess.Popen(
            self.command(),
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Its own process group, so stop() can reach the workers if the master hangs.
            start_new_session=True,
        )
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        url = self.base_url + self.ready_path
        last_error = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise ServerFailed(f"server exited with {self.process.returncode}:\n{tail}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        # With several workers, the first answer proves only one is up.
                        if self.workers > 1:
                            self._wait_all_workers(deadline)
                        return
            except urllib.error.HTTPError as exc:
                last_error = f"HTTP {exc.code}"
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
                last_error = str(exc)
            time.sleep(0.1)
        tail = self.log_tail()
        self.stop()
        raise ServerFailed(f"server not ready after {timeout:.0f} s ({last_error}):\n{tail}")

    def _wait_all_workers(self, deadline: float) -> None:
        """Wait until the master has forked every worker (they import the app after)."""
        assert self.process is not None
        while time.monotonic() < deadline:
            if len(self.worker_pids()) >= self.workers:
                time.sleep(1.0)  # workers finish importing the app
                return
            time.sleep(0.1)

    def worker_pids(self) -> list[int]:
        """The uvicorn master's worker processes (Linux /proc).

        Workers are multiprocessing ``spawn`` children; the master's other child, the
        multiprocessing resource tracker, is not a worker.
        """
        assert self.process is not None
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            pids = [int(pid) for pid in children.read_text().split()]
        except OSError:
            return []
        workers = []
        for pid in pids:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmdline:
                workers.append(pid)
        # A single-worker uvicorn serves from the master process itself.
        return workers or ([self.process.pid] if self.workers == 1 else [])

    def stop(self, timeout: float = 15.0) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        if not self._log.closed:
            self._log.close()
            Path(self._log.name).unlink(missing_ok=True)

    def log_tail(self, lines: int = 40) -> str:
        if not self._log.closed:
            self._log.flush()
        try:
            text = Path(self._log.name).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> UvicornServer:
        return self.start() if self.process is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
