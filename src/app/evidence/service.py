"""Evidence flows: record an upload, find records, flag one. Plain keyword-only functions
on the request's database session; the caller owns the transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import Request
from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.buildings.models import Asset
from src.app.core import audit
from src.app.core.errors import ApiError
from src.app.core.settings import Settings
from src.app.core.tenancy import Principal, Role, get_owned, scoped
from src.app.evidence.models import Evidence, EvidenceFlag
from src.app.evidence.schemas import UploadForm
from src.app.evidence.signatures import MediaType
from src.app.evidence.storage import BlobStore, build_store
from src.app.evidence.upload import ReceivedUpload
from src.app.sessions.models import SessionStatus, TestSession

STAGING_DIR_NAME = "staging"


def blob_key(organisation_id: uuid.UUID, sha256: str) -> str:
    """Content addressing: one blob per organisation and hash."""
    return f"blobs/{organisation_id}/{sha256[:2]}/{sha256}"


def thumbnail_key(organisation_id: uuid.UUID, sha256: str) -> str:
    return f"thumbs/{organisation_id}/{sha256[:2]}/{sha256}.jpg"


def get_store(request: Request) -> BlobStore:
    """The app's evidence store, built on first use (tests never run the lifespan)."""
    store: BlobStore | None = getattr(request.app.state, "evidence_store", None)
    if store is None:
        store = build_store(request.app.state.settings)
        request.app.state.evidence_store = store
    return store


def staging_dir(settings: Settings) -> Path:
    return settings.evidence_dir / STAGING_DIR_NAME


def declared_fields(form: UploadForm, received: ReceivedUpload) -> dict[str, Any]:
    """Everything the client declared, as the record fingerprint sees it."""
    return {
        "session_id": str(form.session_id),
        "asset_id": str(form.asset_id) if form.asset_id else None,
        "defect_id": str(form.defect_id) if form.defect_id else None,
        "kind": form.kind.value,
        "sha256": form.sha256,
        "captured_at": form.captured_at.isoformat() if form.captured_at else None,
        "device_id": form.device_id,
        "metadata": form.metadata,
        "filename": received.filename,
    }


async def _check_targets(*, db: AsyncSession, principal: Principal, form: UploadForm) -> None:
    session = await get_owned(db, TestSession, form.session_id, principal, what="Test session")
    if session.status == SessionStatus.completed.value and principal.role is not Role.admin:
        raise ApiError(
            409,
            f"Test session {form.session_id} is completed; only an admin can add evidence "
            "to a completed session",
        )
    if form.asset_id is not None:
        asset = await get_owned(db, Asset, form.asset_id, principal, what="Asset")
        if session.building_id is not None and asset.building_id != session.building_id:
            raise ApiError(
                422, f"Asset {form.asset_id} is not in the building of test session {session.id}"
            )


async def record_upload(
    *,
    db: AsyncSession,
    store: BlobStore,
    principal: Principal,
    form: UploadForm,
    received: ReceivedUpload,
    media: MediaType,
    filename: str,
    embedded: dict[str, Any],
    fingerprint: str,
) -> tuple[Evidence, bool]:
    """The record for this upload and whether it is new. An identical earlier upload
    (same fingerprint) is returned as it is; otherwise the blob is stored (unless the
    organisation has it already) and a record inserted. Flushes, never commits."""
    await _check_targets(db=db, principal=principal, form=form)
    existing = (
        await db.execute(
            scoped(select(Evidence), Evidence, principal).where(Evidence.fingerprint == fingerprint)
        )
    ).scalar_one_or_none()
    if existing is not None:
        return existing, False
    # Stored before the commit: a crash in between leaves an unreferenced blob, which the
    # purge removes; the other order could leave a record without its bytes.
    await store.put(blob_key(principal.organisation_id, received.sha256), received.staged)
    evidence = Evidence(
        organisation_id=principal.organisation_id,
        session_id=form.session_id,
        asset_id=form.asset_id,
        defect_id=form.defect_id,
        kind=form.kind.value,
        sha256=received.sha256,
        size_bytes=received.size,
        content_type=media.mime,
        filename=filename,
        captured_at=form.captured_at,
        device_id=form.device_id,
        metadata_=form.metadata,
        embedded=embedded,
        uploaded_by=principal.user_id,
        fingerprint=fingerprint,
    )
    db.add(evidence)
    try:
        await db.flush()
    except IntegrityError as exc:
        # The same upload committed concurrently (another key), or a target vanished.
        raise ApiError(
            409, "This upload conflicts with a concurrent change; retry", retryable=True
        ) from exc
    await audit.record_by(
        db,
        principal,
        "evidence.stored",
        "evidence",
        evidence.id,
        {
            "sha256": evidence.sha256,
            "size_bytes": evidence.size_bytes,
            "content_type": evidence.content_type,
            "kind": evidence.kind,
            "session_id": evidence.session_id,
            "asset_id": evidence.asset_id,
            "defect_id": evidence.defect_id,
            "captured_at": evidence.captured_at,
            "device_id": evidence.device_id,
        },
    )
    return evidence, True


async def flags_of(
    *, db: AsyncSession, evidence_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[EvidenceFlag]]:
    """Each record's flags, oldest first, in one query."""
    found: dict[uuid.UUID, list[EvidenceFlag]] = {i: [] for i in evidence_ids}
    if not evidence_ids:
        return found
    rows = await db.execute(
        select(EvidenceFlag)
        .where(EvidenceFlag.evidence_id.in_(evidence_ids))
        .order_by(EvidenceFlag.created_at, EvidenceFlag.id)
    )
    for flag in rows.scalars():
        found[flag.evidence_id].append(flag)
    return found


def list_for_session(principal: Principal, session_id: uuid.UUID) -> Select[Any]:
    return scoped(select(Evidence), Evidence, principal).where(Evidence.session_id == session_id)


def list_for_asset(principal: Principal, asset_id: uuid.UUID) -> Select[Any]:
    return scoped(select(Evidence), Evidence, principal).where(Evidence.asset_id == asset_id)


async def add_flag(
    *, db: AsyncSession, principal: Principal, evidence_id: uuid.UUID, reason: str
) -> EvidenceFlag:
    await get_owned(db, Evidence, evidence_id, principal, what="Evidence")
    flag = EvidenceFlag(
        organisation_id=principal.organisation_id,
        evidence_id=evidence_id,
        reason=reason,
        flagged_by=principal.user_id,
    )
    db.add(flag)
    await db.flush()
    await audit.record_by(
        db,
        principal,
        "evidence.flagged",
        "evidence",
        evidence_id,
        {"flag_id": flag.id, "reason": reason},
    )
    return flag
