"""The append-only op log of each session's results: the source of truth."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from src.app.core.clock import utc_now
from src.app.core.database import Base, JSONType, UTCDateTime


class ResultOp(Base):
    __tablename__ = "result_ops"
    __table_args__ = (UniqueConstraint("session_id", "op_id"),)

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("test_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    # Per-session sequence assigned by the server; grows with every accepted op.
    version: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    op: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(Text)
    # JSON null for a delete; a set may also write JSON null, so ``op`` tells them apart.
    value: Mapped[Any] = mapped_column(JSONType, nullable=True)
    ts: Mapped[str] = mapped_column(String(29))
    device_id: Mapped[str] = mapped_column(String(128))
    op_id: Mapped[str] = mapped_column(String(128))
    received_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
