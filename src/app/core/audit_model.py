"""The audit trail's table: one row per recorded change, never updated or deleted."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from src.app.core.clock import utc_now
from src.app.core.database import Base, JSONType, UTCDateTime

# BIGINT on PostgreSQL (a BIGSERIAL); on SQLite an INTEGER primary key is the rowid.
SEQ_TYPE = BigInteger().with_variant(Integer(), "sqlite")


class AuditEntry(Base):
    __tablename__ = "audit_entries"
    __table_args__ = (CheckConstraint("actor_type IN ('user', 'system')", name="actor_type_valid"),)

    # Insertion order; not the chain order (see docs/api/audit.md).
    seq: Mapped[int] = mapped_column(SEQ_TYPE, primary_key=True, autoincrement=True)
    id: Mapped[uuid.UUID] = mapped_column(default=uuid.uuid4)
    # No foreign key (migration 0009): written with the principal's organisation, and a
    # key would lock the organisation row on every write.
    organisation_id: Mapped[uuid.UUID] = mapped_column()
    actor_type: Mapped[str] = mapped_column(String(16))
    # No foreign key: the trail says who acted even if that row were ever removed.
    actor_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    action: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str] = mapped_column(String(64))
    subject_id: Mapped[str] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    transaction_id: Mapped[str] = mapped_column(String(64))
    # PostgreSQL: the writing transaction's id, set by a trigger (the writer cannot choose
    # it); the sealer's horizon is expressed in it. Null on SQLite.
    txid: Mapped[int | None] = mapped_column(BigInteger, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)


# The list endpoint's keyset indexes (organisation, filter, created_at DESC, id DESC).
Index(
    "ix_audit_entries_organisation_id_created_at_id",
    AuditEntry.organisation_id,
    AuditEntry.created_at.desc(),
    AuditEntry.id.desc(),
)
Index(
    "ix_audit_entries_organisation_id_subject_created_at_id",
    AuditEntry.organisation_id,
    AuditEntry.subject_type,
    AuditEntry.subject_id,
    AuditEntry.created_at.desc(),
    AuditEntry.id.desc(),
)
Index(
    "ix_audit_entries_organisation_id_actor_id_created_at_id",
    AuditEntry.organisation_id,
    AuditEntry.actor_id,
    AuditEntry.created_at.desc(),
    AuditEntry.id.desc(),
)
# The sealer reads the entries above its watermark in (txid, seq) order.
Index("ix_audit_entries_txid_seq", AuditEntry.txid, AuditEntry.seq)
