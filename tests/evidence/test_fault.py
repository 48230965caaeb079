"""A real server process killed (SIGKILL) in the middle of an upload leaves no record, and
nothing on disk that the next purge does not remove."""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from src.app.core.clock import utc_now
from src.app.evidence.models import Evidence
from src.app.evidence.retention import purge_evidence
from src.app.evidence.storage import build_store
from src.app.maintenance import purge_expired
from tests.conftest import TEST_SECRET
from tests.evidence import files
from tests.evidence.conftest import EvidenceApi, Site
from tests.identity.test_processes import Server


def _server_env(database_url: str, evidence_dir: Path) -> dict[str, str]:
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
        FIREMODE_EVIDENCE_DIR=str(evidence_dir),
    )
    return env


def _wait_for(condition, what: str, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


async def test_sigkill_mid_upload_leaves_nothing_purge_keeps(
    evidence_api: EvidenceApi, site: Site, app, database_url: str, tmp_path: Path
):
    server = Server(_server_env(database_url, evidence_api.root), tmp_path / "server.log")
    try:
        server.wait_ready()
        photo = files.jpeg_with_exif(seed=60) + bytes(4 * 1024 * 1024)
        boundary = "kill" + uuid.uuid4().hex
        head = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="session_id"\r\n\r\n{site.session_id}\r\n'
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="kind"\r\n\r\nphoto\r\n'
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="sha256"\r\n\r\n{files.sha256(photo)}\r\n'
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="p.jpg"\r\n\r\n'
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        length = len(head) + len(photo) + len(tail)
        request = (
            f"POST /v1/evidence HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: {site.tenant.technician.headers['Authorization']}\r\n"
            f"Idempotency-Key: killed\r\nContent-Length: {length}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
        ).encode()
        half = len(photo) // 2
        staging = evidence_api.root / "staging"
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(request + head + photo[:half])
            # The server has written part of the file to its staging area: kill it now.
            _wait_for(
                lambda: any(p.stat().st_size > 0 for p in staging.glob("*.part")),
                "the staging file",
            )
            os.kill(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=10)
    finally:
        server.stop()

    async with app.state.database.sessionmaker() as db:
        count = await db.scalar(
            select(func.count())
            .select_from(Evidence)
            .where(Evidence.organisation_id == site.tenant.organisation_id)
        )
    assert count == 0
    leftovers = evidence_api.stored_files()
    assert [p.parent.name for p in leftovers] == ["staging"]  # the killed upload's part file

    settings = app.state.settings
    # A purge within the grace period keeps it (it could be an upload still running)...
    async with app.state.database.sessionmaker() as db:
        await purge_expired(db, settings, utc_now())
    assert evidence_api.stored_files() == leftovers
    # ...and the first purge after the grace period removes it.
    later = utc_now() + timedelta(seconds=settings.evidence_orphan_grace_seconds + 60)
    async with app.state.database.sessionmaker() as db:
        # The evidence step alone: a purge in the future would expire other tests' tokens.
        counts = await purge_evidence(
            db=db, store=build_store(settings), settings=settings, now=later
        )
    assert counts["evidence_staging_files"] == 1
    assert evidence_api.stored_files() == []
