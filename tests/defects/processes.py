"""Real processes for the cross-process tests: a uvicorn server with several workers, and
``firemode worker``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import TEST_SECRET
from tests.identity.conftest import closed_port

ROOT = Path(__file__).resolve().parents[2]


def process_env(database_url: str, **extra: str) -> dict[str, str]:
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
        **extra,
    )
    return env


class Process:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._log_file = log.open("ab")
        self.process = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=self._log_file, stderr=subprocess.STDOUT
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log_file.close()

    def kill(self) -> None:
        """SIGKILL: no clean-up, as when a machine dies."""
        self.process.kill()
        self.process.wait()
        self._log_file.close()


class Server(Process):
    def __init__(self, env: dict[str, str], log: Path, *, workers: int) -> None:
        self.port = closed_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [
            sys.executable, "-m", "uvicorn", "src.app.main:app", "--host", "127.0.0.1",
            "--port", str(self.port), "--workers", str(workers), "--no-access-log",
            "--timeout-worker-healthcheck", "60",
        ]  # fmt: skip
        super().__init__(args, env, log)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited: {self.log.read_text()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server did not start: {self.log.read_text()}")


def worker(env: dict[str, str], log: Path) -> Process:
    return Process([sys.executable, "-m", "src.app.cli", "worker"], env, log)
