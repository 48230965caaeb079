"""Retention and clean-up for ``firemode maintenance purge``.

- Evidence records (and their flags) older than ``evidence_retention_days`` go; nothing
  younger is ever touched.
- A blob no record references (a crash between storing it and committing the record,
  or its last record purged) and its thumbnail are removed once older than
  ``evidence_orphan_grace_seconds``; so are staging files of uploads that never finished
  (a killed server) and temporary files of interrupted writes. The grace period keeps
  uploads in progress out of reach: a blob reused by a new upload has its time refreshed.
- An S3 blob still under object lock stays until the lock expires (counted as kept).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.core import audit
from src.app.core.settings import Settings
from src.app.evidence.models import Evidence, EvidenceFlag
from src.app.evidence.service import staging_dir, thumbnail_key
from src.app.evidence.storage import TEMP_SUFFIX, BlobStore


async def purge_evidence(
    *, db: AsyncSession, store: BlobStore, settings: Settings, now: datetime
) -> dict[str, int]:
    """Run every clean-up step; returns how many of each kind went. Commits."""
    counts = await _purge_expired_records(db=db, settings=settings, now=now)
    grace_end = now - timedelta(seconds=settings.evidence_orphan_grace_seconds)
    counts.update(await _purge_orphans(db=db, store=store, before=grace_end))
    counts["evidence_staging_files"] = await asyncio.to_thread(
        _purge_staging, staging_dir(settings), grace_end
    )
    return counts


async def _purge_expired_records(
    *, db: AsyncSession, settings: Settings, now: datetime
) -> dict[str, int]:
    cutoff = now - timedelta(days=settings.evidence_retention_days)
    expired = select(Evidence.id).where(Evidence.created_at < cutoff)
    # One audit entry per organisation, in the deleting transaction.
    per_org = await db.execute(
        select(Evidence.organisation_id, func.count())
        .where(Evidence.created_at < cutoff)
        .group_by(Evidence.organisation_id)
    )
    for organisation_id, count in per_org.all():
        await audit.record(
            db,
            organisation_id=organisation_id,
            actor=audit.SYSTEM,
            action="evidence.purged",
            subject_type="organisation",
            subject_id=organisation_id,
            payload={"records": int(count), "created_before": cutoff},
            now=now,
        )
    flags = await db.execute(delete(EvidenceFlag).where(EvidenceFlag.evidence_id.in_(expired)))
    records = await db.execute(delete(Evidence).where(Evidence.created_at < cutoff))
    await db.commit()
    return {
        "evidence_records": int(getattr(records, "rowcount", 0) or 0),
        "evidence_flags": int(getattr(flags, "rowcount", 0) or 0),
    }


def _parse_key(key: str) -> tuple[uuid.UUID, str] | None:
    """(organisation, sha256) of ``blobs/<org>/<xx>/<sha>`` or ``thumbs/<org>/<xx>/<sha>.jpg``."""
    parts = key.split("/")
    if len(parts) != 4:
        return None
    try:
        organisation_id = uuid.UUID(parts[1])
    except ValueError:
        return None
    sha256 = parts[3].removesuffix(".jpg")
    if len(sha256) != 64:
        return None
    return organisation_id, sha256


async def _referenced(db: AsyncSession, organisation_id: uuid.UUID, sha256: str) -> bool:
    statement = select(
        exists().where(Evidence.organisation_id == organisation_id, Evidence.sha256 == sha256)
    )
    found = bool(await db.scalar(statement))
    await db.rollback()  # no transaction left open while the store is walked
    return found


async def _purge_orphans(*, db: AsyncSession, store: BlobStore, before: datetime) -> dict[str, int]:
    counts = {"evidence_orphan_blobs": 0, "evidence_locked_blobs": 0, "evidence_temp_files": 0}
    for prefix in ("blobs/", "thumbs/"):
        async for item in store.objects(prefix):
            if item.modified_at >= before:
                continue
            if item.key.endswith(TEMP_SUFFIX):
                counts["evidence_temp_files"] += int(await store.delete(item.key))
                continue
            parsed = _parse_key(item.key)
            if parsed is None or await _referenced(db, *parsed):
                continue
            deleted = await store.delete(item.key)
            if prefix == "blobs/":
                counts["evidence_orphan_blobs" if deleted else "evidence_locked_blobs"] += 1
                await store.delete(thumbnail_key(*parsed))
    return counts


def _purge_staging(directory: Path, before: datetime) -> int:
    removed = 0
    if not directory.is_dir():
        return 0
    for path in directory.iterdir():
        try:
            modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        except FileNotFoundError:
            continue
        if modified < before and path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    return removed
