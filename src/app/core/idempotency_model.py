"""Stored outcomes of POST requests keyed by Idempotency-Key (docs/api/idempotency.md)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from src.app.core.database import Base, IdentifiedMixin, UTCDateTime


class IdempotencyRecord(IdentifiedMixin, Base):
    __tablename__ = "idempotency_records"
    __table_args__ = (
        UniqueConstraint("organisation_id", "user_id", "method", "path", "idempotency_key"),
        CheckConstraint("state IN ('in_progress', 'completed')", name="state_valid"),
    )

    # The principal's ids. No foreign keys (migration 0009): they would lock the same
    # organisation and user rows on every write; records expire and are purged anyway.
    organisation_id: Mapped[uuid.UUID] = mapped_column()
    user_id: Mapped[uuid.UUID] = mapped_column()
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(1024))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="in_progress")
    response_status: Mapped[int | None] = mapped_column(Integer, default=None)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    response_headers: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    # None: the body is stored as sent; 'zlib': compressed (large bodies).
    response_encoding: Mapped[str | None] = mapped_column(String(8), default=None)
    # Set by routes that store a reference instead of a whole body: the stored body is
    # the response without its document, which the route renders again at this version.
    response_document_version: Mapped[int | None] = mapped_column(BigInteger, default=None)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
