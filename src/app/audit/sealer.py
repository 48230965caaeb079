"""The sealer: gives committed audit entries their place and hash in their chain.

Writers never touch a chain head: they insert entries (``src.app.core.audit``). The
sealer, moments later, appends every entry that can no longer be preceded by another
one to its organisation's chain, in one transaction that only inserts ``audit_seals``.

- PostgreSQL: the chain order is (writer's transaction id, seq). The sealer reads the
  horizon ``H``, the oldest transaction id still running in this database (or, with none
  running, the next id to be assigned): every transaction of this database with an id
  below ``H`` has ended, and every one running or still to start has an id of at least
  ``H``. So the entries with ``txid < H`` are final (none can still appear
  or vanish), and every entry still to come sorts after them. The sealer seals exactly
  those, from the previous watermark up to ``H``, and records ``H`` as the new
  watermark.
- SQLite: one writer at a time. The sealer takes the write lock (``BEGIN IMMEDIATE``),
  so no other write transaction is open: every entry it sees is committed, and any
  later entry gets a larger seq. The chain order is seq.

Only one sealer works at a time (a transaction-scoped advisory lock on PostgreSQL, the
write lock on SQLite); and the unique (organisation, position) constraint makes a
fork impossible even without it. Full argument: docs/api/audit.md.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Row, Table, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.audit.models import AuditSeal
from src.app.core.audit_chain import EntryFacts, genesis_hash, link_hash
from src.app.core.audit_model import AuditEntry
from src.app.core.clock import utc_now
from src.app.core.database import Database
from src.app.core.transactions import begin_write

logger = logging.getLogger("firemode.audit")

DEFAULT_BATCH = 5000
# A server's sealer shares its event loop with requests: it seals in small transactions,
# so that it never holds the loop for long (a batch costs ~60 µs of CPU per entry).
SERVER_BATCH = 200
# pg_try_advisory_xact_lock key of the sealer (any fixed 64-bit number).
SEALER_LOCK_ID = 0x6669_7265_6175_6474  # "fireaudt"

_E = cast(Table, AuditEntry.__table__).c
_S = cast(Table, AuditSeal.__table__).c
ENTRY_COLUMNS = (
    _E.seq,
    _E.id,
    _E.organisation_id,
    _E.actor_type,
    _E.actor_id,
    _E.action,
    _E.subject_type,
    _E.subject_id,
    _E.payload,
    _E.transaction_id,
    _E.created_at,
)
# The oldest transaction that may still write here: the smallest transaction id running
# in one atomic snapshot, leaving out those of backends connected to other databases of
# the cluster (they cannot write our tables); with none running, the snapshot's xmax (the
# next id to be assigned). A transaction without an id yet gets one >= xmax. Prepared
# transactions, and other databases' transactions this role may not see, count as ours:
# that only delays sealing. Compared modulo 2^32: pg_stat_activity shows 32-bit ids.
_HORIZON = text(
    """
    WITH snap AS (SELECT pg_current_snapshot() AS s),
    elsewhere AS (
        SELECT backend_xid::text::bigint AS xid FROM pg_stat_activity
        WHERE backend_xid IS NOT NULL AND datname IS DISTINCT FROM current_database()
    )
    SELECT LEAST(
        (SELECT min(x::text::bigint) FROM snap, pg_snapshot_xip(snap.s) AS x
         WHERE x::text::bigint % 4294967296 NOT IN (SELECT xid FROM elsewhere)),
        (SELECT pg_snapshot_xmax(s)::text::bigint FROM snap)
    )
    """
)
_WATERMARK = select(func.coalesce(func.max(_S.horizon), 0))


def entry_facts(row: Row[Any] | Any) -> EntryFacts:
    """The hashed facts of an entry row selected with ``ENTRY_COLUMNS``."""
    return EntryFacts(
        seq=row.seq,
        id=row.id,
        organisation_id=row.organisation_id,
        actor_type=row.actor_type,
        actor_id=row.actor_id,
        action=row.action,
        subject_type=row.subject_type,
        subject_id=row.subject_id,
        payload=row.payload,
        transaction_id=row.transaction_id,
        created_at=row.created_at,
    )


async def chain_head(db: AsyncSession, organisation_id: uuid.UUID) -> tuple[int, str]:
    """(position, hash) of the organisation's last sealed link; (0, genesis) if none."""
    row = (
        await db.execute(
            select(_S.position, _S.hash)
            .where(_S.organisation_id == organisation_id)
            .order_by(_S.position.desc())
            .limit(1)
        )
    ).one_or_none()
    if row is None:
        return 0, genesis_hash(organisation_id)
    return int(row.position), str(row.hash)


# Entries to seal in one transaction, the watermark after them, and whether more final
# entries were left for another transaction.
_Found = tuple[Sequence[Any], int, bool]


async def _final_entries_pg(db: AsyncSession, limit: int) -> _Found | None:
    """Entries that can no longer be preceded, in chain order, and the new watermark."""
    conn = await db.connection()
    locked = await conn.scalar(select(func.pg_try_advisory_xact_lock(SEALER_LOCK_ID)))
    if not locked:
        return None  # another sealer is at work
    horizon = int(await conn.scalar(_HORIZON) or 0)
    watermark = int(await conn.scalar(_WATERMARK) or 0)
    if horizon <= watermark:
        return [], watermark, False
    base = select(*ENTRY_COLUMNS, _E.txid).where(_E.txid >= watermark)
    rows = (
        await conn.execute(base.where(_E.txid < horizon).order_by(_E.txid, _E.seq).limit(limit + 1))
    ).all()
    if len(rows) <= limit:
        return rows, horizon, False
    # Too many for one batch: stop at a transaction boundary, so the watermark still
    # means "every entry below it is sealed".
    cut = rows[limit].txid
    if cut > rows[0].txid:
        return [r for r in rows if r.txid < cut], cut, True
    first = rows[0].txid  # one huge transaction: its entries go in whole
    whole = (await conn.execute(base.where(_E.txid == first).order_by(_E.seq))).all()
    return whole, first + 1, True


async def _final_entries_sqlite(db: AsyncSession, limit: int) -> _Found:
    conn = await db.connection()
    watermark = int(await conn.scalar(_WATERMARK) or 0)
    if await conn.scalar(select(_E.seq).where(_E.seq >= watermark).limit(1)) is None:
        return [], watermark, False  # nothing to do: do not take the write lock
    await begin_write(db)  # no other write transaction is open from here on
    conn = await db.connection()
    watermark = int(await conn.scalar(_WATERMARK) or 0)
    rows = (
        await conn.execute(
            select(*ENTRY_COLUMNS).where(_E.seq >= watermark).order_by(_E.seq).limit(limit)
        )
    ).all()
    return rows, (rows[-1].seq + 1 if rows else watermark), len(rows) == limit


async def seal_pending(db: AsyncSession, *, limit: int = DEFAULT_BATCH) -> int:
    """Seal up to about ``limit`` final entries, in their own transaction, committed here.
    Returns how many were sealed (0 when another sealer holds the lock)."""
    sealed, _more = await _seal_batch(db, limit)
    return sealed


async def _seal_batch(db: AsyncSession, limit: int) -> tuple[int, bool]:
    """:func:`seal_pending`, also saying whether final entries were left for another
    transaction (a batch ends at a transaction boundary, so it may hold fewer than
    ``limit`` entries and still leave some)."""
    try:
        if db.get_bind().dialect.name == "postgresql":
            found = await _final_entries_pg(db, limit)
        else:
            found = await _final_entries_sqlite(db, limit)
        if not found or not found[0]:
            await db.rollback()
            return 0, False
        rows, horizon, more = found
        heads: dict[uuid.UUID, tuple[int, str]] = {}
        now = utc_now()
        seals: list[dict[str, Any]] = []
        for row in rows:
            org = row.organisation_id
            if org not in heads:
                heads[org] = await chain_head(db, org)
            position, previous = heads[org]
            digest = link_hash(previous, entry_facts(row))
            heads[org] = (position + 1, digest)
            seals.append(
                {
                    "entry_seq": row.seq,
                    "organisation_id": org,
                    "position": position + 1,
                    "hash": digest,
                    "horizon": horizon,
                    "sealed_at": now,
                }
            )
        conn = await db.connection()
        await conn.execute(insert(cast(Table, AuditSeal.__table__)), seals)
        await db.commit()
        return len(seals), more
    except BaseException:
        await db.rollback()
        raise


async def seal_all(database: Database, *, batch: int = DEFAULT_BATCH) -> int:
    """Seal until nothing final is left unsealed; returns how many were sealed."""
    total = 0
    while True:
        async with database.sessionmaker() as db:
            sealed, more = await _seal_batch(db, batch)
        total += sealed
        if not more:
            return total


async def run_sealer(database: Database, *, interval_seconds: float) -> None:
    """Seal every ``interval_seconds`` until cancelled; errors are logged, not fatal.

    Batches of ``SERVER_BATCH``: sealing a second's worth of a busy server's entries at
    once (800 entries) cost about 40 ms of the event loop's CPU in one transaction, which
    every request in flight on that process waited out; batches of 200 cost about 13 ms
    each (``python -m bench.audit_seal_pass``)."""
    while True:
        try:
            await seal_all(database, batch=SERVER_BATCH)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("audit sealing failed; retrying")
        await asyncio.sleep(interval_seconds)
