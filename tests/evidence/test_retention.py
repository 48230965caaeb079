"""`firemode maintenance purge`: evidence younger than the retention period stays; old
records go; unreferenced blobs and abandoned staging files go after the grace period."""

from __future__ import annotations

import os
import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update

from src.app.core.clock import utc_now
from src.app.evidence.models import Evidence, EvidenceFlag
from src.app.evidence.service import blob_key
from src.app.maintenance import purge_expired
from tests.evidence import files
from tests.evidence.conftest import EvidenceApi, Site


def _age(path: Path, seconds: float) -> None:
    stamp = path.stat().st_mtime - seconds
    os.utime(path, (stamp, stamp))


async def test_purge_keeps_young_evidence_and_removes_orphans(
    evidence_api: EvidenceApi, site: Site, app
):
    tenant = site.tenant
    settings = app.state.settings
    young = await evidence_api.upload(tenant.technician, site.session_id, files.png(seed=50))
    old = await evidence_api.upload(tenant.technician, site.session_id, files.png(seed=51))
    flag = await evidence_api.client.post(
        f"/v1/evidence/{old.json()['id']}/flags",
        json={"reason": "blurry"},
        headers=tenant.admin.headers,
    )
    assert flag.status_code == 201
    retention = timedelta(days=settings.evidence_retention_days)
    async with app.state.database.sessionmaker() as db:
        # One day short of the retention period, and one day past it.
        for response, age in (
            (young, retention - timedelta(days=1)),
            (old, retention + timedelta(days=1)),
        ):
            await db.execute(
                update(Evidence)
                .where(Evidence.id == uuid.UUID(response.json()["id"]))
                .values(created_at=utc_now() - age)
            )
        await db.commit()

    objects = evidence_api.root / "objects"
    orphan = objects / blob_key(tenant.organisation_id, "ab" * 32)  # a crash before commit
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"orphan")
    staging = evidence_api.root / "staging"
    abandoned = staging / "dead.part"  # an upload whose server was killed
    abandoned.write_bytes(b"half an upload")
    fresh = staging / "in-flight.part"  # an upload still running
    fresh.write_bytes(b"receiving")
    grace = settings.evidence_orphan_grace_seconds
    for path in (orphan, abandoned):
        _age(path, grace + 60)
    # The old record's blob was stored long ago too.
    old_blob = objects / blob_key(tenant.organisation_id, old.json()["sha256"])
    young_blob = objects / blob_key(tenant.organisation_id, young.json()["sha256"])
    for path in (old_blob, young_blob):
        _age(path, grace + 60)

    async with app.state.database.sessionmaker() as db:
        counts = await purge_expired(db, settings, utc_now())
        left = set(
            await db.scalars(
                select(Evidence.id).where(Evidence.organisation_id == tenant.organisation_id)
            )
        )
        flags = list(
            await db.scalars(
                select(EvidenceFlag.id).where(
                    EvidenceFlag.organisation_id == tenant.organisation_id
                )
            )
        )
    assert left == {uuid.UUID(young.json()["id"])}
    assert flags == []
    assert counts["evidence_records"] == 1
    assert counts["evidence_flags"] == 1
    assert counts["evidence_orphan_blobs"] == 2  # the crash's blob and the purged record's
    assert counts["evidence_staging_files"] == 1
    assert evidence_api.stored_files() == [young_blob, fresh]
    fetched = await evidence_api.client.get(
        f"/v1/evidence/{young.json()['id']}/content", headers=tenant.viewer.headers
    )
    assert fetched.status_code == 200
