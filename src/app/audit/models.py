"""Seals: each entry's place and hash in its organisation's chain. Append-only too."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from src.app.core.audit_model import SEQ_TYPE
from src.app.core.clock import utc_now
from src.app.core.database import Base, UTCDateTime


class AuditSeal(Base):
    __tablename__ = "audit_seals"
    # One link per position: two sealers racing cannot fork a chain (one insert fails).
    __table_args__ = (UniqueConstraint("organisation_id", "position"),)

    entry_seq: Mapped[int] = mapped_column(
        SEQ_TYPE, ForeignKey("audit_entries.seq"), primary_key=True, autoincrement=False
    )
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    position: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    # Every entry below this watermark was sealed by this seal's batch or an earlier one
    # (PostgreSQL: a transaction id; SQLite: an entry seq). See docs/api/audit.md.
    horizon: Mapped[int] = mapped_column(BigInteger)
    sealed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)


Index("ix_audit_seals_horizon", AuditSeal.horizon)
