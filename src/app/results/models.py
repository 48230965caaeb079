"""The results domain's tables: the op log (the truth) and the state derived from it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from src.app.core.clock import utc_now
from src.app.core.database import Base, JSONType, UTCDateTime


class ResultOp(Base):
    """The append-only op log of each session's results: the source of truth."""

    __tablename__ = "result_ops"
    __table_args__ = (UniqueConstraint("session_id", "op_id"),)

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("test_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    # Per-session sequence assigned by the server; grows with every accepted op.
    version: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # The session's organisation, copied; no foreign key (migration 0009): the session's own
    # keeps it right, and the write path need not lock the organisation row per op.
    organisation_id: Mapped[uuid.UUID] = mapped_column()
    op: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(Text)
    # JSON null for a delete; a set may also write JSON null, so ``op`` tells them apart.
    value: Mapped[Any] = mapped_column(JSONType, nullable=True)
    ts: Mapped[str] = mapped_column(String(29))
    device_id: Mapped[str] = mapped_column(String(128))
    op_id: Mapped[str] = mapped_column(String(128))
    # Who sent the op; a record like an audit entry's actor, so no foreign key.
    received_by: Mapped[uuid.UUID | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)


class ResultHead(Base):
    """Per-session counters of the results: one row per session that received results.

    Derived from the log like ``result_paths``; its row is what a write locks and bumps.
    """

    __tablename__ = "result_heads"

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("test_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    organisation_id: Mapped[uuid.UUID] = mapped_column()  # the session's, copied
    version: Mapped[int] = mapped_column(BigInteger, default=0)  # ops in the log
    # The largest ``ts`` in the log: server-stamped ops are stamped after it.
    last_ts: Mapped[str | None] = mapped_column(String(29), default=None)
    # Bytes of the per-path state (paths + live set values): bounds the document.
    state_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    # Bytes of the whole log (paths + values): bounds what one session stores.
    log_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)


class ResultPath(Base):
    """The per-path state (see ``results/state.py``): newest set, newer delete.

    Order keys are stored as ``ts`` U+001F ``device_id`` U+001F ``op_id``, which sorts
    like the key tuple when compared byte by byte (``COLLATE "C"`` on PostgreSQL).
    """

    __tablename__ = "result_paths"

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("test_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    path: Mapped[str] = mapped_column(Text, primary_key=True)
    set_key: Mapped[str | None] = mapped_column(String(400), default=None)
    set_value: Mapped[Any] = mapped_column(JSONType, nullable=True, default=None)
    set_bytes: Mapped[int] = mapped_column(Integer, default=0)
    del_key: Mapped[str | None] = mapped_column(String(400), default=None)
