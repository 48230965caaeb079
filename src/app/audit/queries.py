"""Reading the trail: the filtered list and the chain head."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.audit.models import AuditSeal
from src.app.audit.schemas import AuditEntryOut, AuditHeadOut, ChainLinkOut
from src.app.core.audit_chain import genesis_hash
from src.app.core.audit_model import AuditEntry
from src.app.core.clock import to_rfc3339

AUDIT_ENDPOINT = "audit.list"
_S = cast(Table, AuditSeal.__table__).c


@dataclass(frozen=True, slots=True)
class AuditFilters:
    subject_type: str | None
    subject_id: str | None
    actor_id: uuid.UUID | None
    since: datetime | None
    until: datetime | None

    def binding(self) -> dict[str, Any]:
        return {
            "subject_type": self.subject_type,
            "subject_id": self.subject_id,
            "actor_id": str(self.actor_id) if self.actor_id else None,
            "from": to_rfc3339(self.since) if self.since else None,
            "to": to_rfc3339(self.until) if self.until else None,
        }


def list_entries(organisation_id: uuid.UUID, filters: AuditFilters) -> Select[Any]:
    statement = select(AuditEntry).where(AuditEntry.organisation_id == organisation_id)
    if filters.subject_type is not None:
        statement = statement.where(AuditEntry.subject_type == filters.subject_type)
    if filters.subject_id is not None:
        statement = statement.where(AuditEntry.subject_id == filters.subject_id)
    if filters.actor_id is not None:
        statement = statement.where(AuditEntry.actor_id == filters.actor_id)
    if filters.since is not None:
        statement = statement.where(AuditEntry.created_at >= filters.since)
    if filters.until is not None:
        statement = statement.where(AuditEntry.created_at < filters.until)
    return statement


async def entries_out(db: AsyncSession, rows: Sequence[AuditEntry]) -> list[AuditEntryOut]:
    """The page's entries with their chain links (one look-up for the whole page)."""
    seqs = [row.seq for row in rows]
    links: dict[int, ChainLinkOut] = {}
    if seqs:
        found = await db.execute(
            select(_S.entry_seq, _S.position, _S.hash).where(_S.entry_seq.in_(seqs))
        )
        links = {r.entry_seq: ChainLinkOut(position=r.position, hash=r.hash) for r in found}
    return [
        AuditEntryOut(
            id=row.id,
            created_at=row.created_at,
            updated_at=row.created_at,
            seq=row.seq,
            organisation_id=row.organisation_id,
            actor_type=row.actor_type,
            actor_id=row.actor_id,
            action=row.action,
            subject_type=row.subject_type,
            subject_id=row.subject_id,
            payload=row.payload,
            transaction_id=row.transaction_id,
            chain=links.get(row.seq),
        )
        for row in rows
    ]


async def count_unsealed(db: AsyncSession, organisation_id: uuid.UUID) -> int:
    """Entries above the sealer's watermark: exactly the unsealed ones (the sealer keeps
    every entry below it sealed; ``audit verify`` checks that it did)."""
    watermark = select(func.coalesce(func.max(_S.horizon), 0)).scalar_subquery()
    above = (
        AuditEntry.txid >= watermark
        if db.get_bind().dialect.name == "postgresql"
        else AuditEntry.seq >= watermark
    )
    count = await db.scalar(
        select(func.count())
        .select_from(AuditEntry)
        .where(above, AuditEntry.organisation_id == organisation_id)
    )
    return int(count or 0)


async def read_head(db: AsyncSession, organisation_id: uuid.UUID) -> AuditHeadOut:
    """The organisation's chain head, and how many of its entries wait to be sealed."""
    head = (
        await db.execute(
            select(
                _S.position,
                _S.hash,
                _S.sealed_at,
                AuditEntry.id,
                AuditEntry.seq,
                AuditEntry.created_at,
            )
            .join(AuditEntry, AuditEntry.seq == _S.entry_seq)
            .where(_S.organisation_id == organisation_id)
            .order_by(_S.position.desc())
            .limit(1)
        )
    ).one_or_none()
    unsealed = await count_unsealed(db, organisation_id)
    if head is None:
        return AuditHeadOut(
            organisation_id=organisation_id,
            position=0,
            hash=genesis_hash(organisation_id),
            entry_id=None,
            entry_seq=None,
            entry_created_at=None,
            sealed_at=None,
            unsealed=unsealed,
        )
    return AuditHeadOut(
        organisation_id=organisation_id,
        position=head.position,
        hash=head.hash,
        entry_id=head.id,
        entry_seq=head.seq,
        entry_created_at=head.created_at,
        sealed_at=head.sealed_at,
        unsealed=unsealed,
    )
