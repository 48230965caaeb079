"""`firemode audit verify`: recompute each organisation's chain from the stored rows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.audit.models import AuditSeal
from src.app.audit.sealer import ENTRY_COLUMNS, entry_facts
from src.app.core.audit_chain import Break, ChainCheck, ChainWalker, SealedLink
from src.app.core.audit_model import AuditEntry

_E = cast(Table, AuditEntry.__table__).c
_S = cast(Table, AuditSeal.__table__).c
_PAGE = 2000


@dataclass(frozen=True, slots=True)
class ChainReport:
    check: ChainCheck
    unsealed: int
    """Entries not sealed yet (committed after the sealer's last pass, or still final-
    izing): they are not covered by the chain until the sealer reaches them."""

    @property
    def ok(self) -> bool:
        return self.check.first_break is None

    def as_dict(self) -> dict[str, Any]:
        brk = self.check.first_break
        return {
            "organisation_id": str(self.check.organisation_id),
            "ok": self.ok,
            "sealed": self.check.sealed,
            "unsealed": self.unsealed,
            "head": {
                "position": self.check.head_position,
                "hash": self.check.head_hash,
                "entry_seq": self.check.head_seq,
            },
            "first_break": None
            if brk is None
            else {
                "position": brk.position,
                "entry_seq": brk.entry_seq,
                "entry_id": str(brk.entry_id) if brk.entry_id else None,
                "reason": brk.reason,
            },
        }


async def _walk(
    db: AsyncSession, organisation_id: uuid.UUID, anchor: tuple[int, str] | None
) -> ChainCheck:
    walker = ChainWalker(organisation_id, anchor)
    after = 0
    joined = cast(Table, AuditSeal.__table__).outerjoin(
        cast(Table, AuditEntry.__table__), _S.entry_seq == _E.seq
    )
    while True:
        rows = (
            await db.execute(
                select(_S.position, _S.entry_seq, _S.hash, *ENTRY_COLUMNS)
                .select_from(joined)
                .where(_S.organisation_id == organisation_id, _S.position > after)
                .order_by(_S.position)
                .limit(_PAGE)
            )
        ).all()
        for row in rows:
            link = SealedLink(
                int(row.position),
                int(row.entry_seq),
                str(row.hash),
                entry_facts(row) if row.seq is not None else None,
            )
            if not walker.feed(link):
                return walker.finish()
        if len(rows) < _PAGE:
            return walker.finish()
        after = int(rows[-1].position)


async def verify_organisation(
    db: AsyncSession, organisation_id: uuid.UUID, *, anchor: tuple[int, str] | None = None
) -> ChainReport:
    """Walk the organisation's chain, then look for entries left outside it: an entry
    below the sealer's watermark that has no seal was inserted into the sealed part of
    the chain (or its seal was removed)."""
    check = await _walk(db, organisation_id, anchor)
    unsealed_filter = (
        select(_E.seq, _E.id, _E.txid)
        .select_from(
            cast(Table, AuditEntry.__table__).outerjoin(
                cast(Table, AuditSeal.__table__), _S.entry_seq == _E.seq
            )
        )
        .where(_E.organisation_id == organisation_id, _S.entry_seq.is_(None))
    )
    unsealed = int(
        await db.scalar(select(func.count()).select_from(unsealed_filter.subquery())) or 0
    )
    if check.first_break is None and unsealed:
        watermark = int(await db.scalar(select(func.coalesce(func.max(_S.horizon), 0))) or 0)
        below = (
            or_(_E.txid.is_(None), _E.txid < watermark)
            if db.get_bind().dialect.name == "postgresql"
            else _E.seq < watermark
        )
        stray = (
            await db.execute(unsealed_filter.where(below).order_by(_E.seq).limit(1))
        ).one_or_none()
        if stray is not None:
            check = ChainCheck(
                check.organisation_id,
                check.sealed,
                check.head_position,
                check.head_hash,
                check.head_seq,
                Break(
                    check.head_position + 1,
                    int(stray.seq),
                    stray.id,
                    "this entry lies in the sealed part of the log but is not in the chain "
                    "(it was inserted afterwards, or its seal was removed)",
                ),
            )
    return ChainReport(check, unsealed)


async def organisations_with_entries(db: AsyncSession) -> list[uuid.UUID]:
    rows = await db.execute(
        select(_E.organisation_id)
        .distinct()
        .union(select(_S.organisation_id).distinct())
        .order_by("organisation_id")
    )
    return [row[0] for row in rows]
