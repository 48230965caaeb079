"""Evidence: files a technician captures (photos, videos, documents, signatures), and the
flags an admin puts on them. Rows are written once and never updated."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from src.app.core.database import Base, IdentifiedMixin, JSONType


class EvidenceKind(StrEnum):
    """What the file shows; each kind accepts some media types (see ``rules.py``)."""

    photo = "photo"
    video = "video"
    document = "document"
    signature = "signature"
    tag = "tag"
    """A photo of the service tag on the equipment."""
    other = "other"


KIND_VALUES = ", ".join(f"'{k.value}'" for k in EvidenceKind)


class Evidence(IdentifiedMixin, Base):
    __tablename__ = "evidence"
    __table_args__ = (
        CheckConstraint(f"kind IN ({KIND_VALUES})", name="kind_valid"),
        # One record per distinct upload: an identical retry (even with a new key) finds it.
        UniqueConstraint("organisation_id", "fingerprint"),
    )

    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("test_sessions.id"))
    asset_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("assets.id"), default=None)
    # Not a foreign key yet: the defects table is not part of this schema (see docs/api).
    defect_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    kind: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255), default="")
    captured_at: Mapped[datetime | None] = mapped_column(default=None)
    device_id: Mapped[str | None] = mapped_column(String(128), default=None)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    # What the file itself says (EXIF capture time, GPS, camera), read at upload.
    embedded: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    uploaded_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    # SHA-256 of every declared field and the content hash: equal means the same upload.
    fingerprint: Mapped[str] = mapped_column(String(64))


class EvidenceFlag(IdentifiedMixin, Base):
    __tablename__ = "evidence_flags"

    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    evidence_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("evidence.id"))
    reason: Mapped[str] = mapped_column(Text)
    flagged_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )


# Keyset pagination of a session's and an asset's evidence, newest first.
Index(
    "ix_evidence_organisation_id_session_id_created_at_id",
    Evidence.organisation_id,
    Evidence.session_id,
    Evidence.created_at.desc(),
    Evidence.id.desc(),
)
Index(
    "ix_evidence_organisation_id_asset_id_created_at_id",
    Evidence.organisation_id,
    Evidence.asset_id,
    Evidence.created_at.desc(),
    Evidence.id.desc(),
)
# Is a blob still referenced (orphan sweep, dedupe)?
Index("ix_evidence_organisation_id_sha256", Evidence.organisation_id, Evidence.sha256)
# Retention purge, and the foreign keys' own look-ups.
Index("ix_evidence_created_at", Evidence.created_at)
Index("ix_evidence_session_id", Evidence.session_id)
Index("ix_evidence_asset_id", Evidence.asset_id)
Index("ix_evidence_flags_evidence_id_created_at", EvidenceFlag.evidence_id, EvidenceFlag.created_at)
