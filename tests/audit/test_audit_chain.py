"""Sealing, verifying, tampering, and the read API."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from src.app.audit.cli import verify
from src.app.audit.models import AuditSeal
from src.app.audit.sealer import seal_all
from src.app.core import audit
from src.app.core.audit_chain import EntryFacts, SealedLink, genesis_hash, link_hash, verify_links
from src.app.core.audit_model import AuditEntry
from src.app.core.clock import utc_now
from src.app.core.database import Database
from tests.conftest import TEST_BACKEND


async def _write(database: Database, organisation_id: uuid.UUID, count: int) -> list[int]:
    async with database.sessionmaker() as db:
        for index in range(count):
            await audit.record(
                db,
                organisation_id=organisation_id,
                actor=audit.SYSTEM,
                action="test.written",
                subject_type="test",
                subject_id=f"item-{index}",
                payload={"index": index, "note": "ünïcode", "ratio": 0.1},
            )
        await db.commit()
        rows = await db.execute(
            select(AuditEntry.seq)
            .where(AuditEntry.organisation_id == organisation_id)
            .order_by(AuditEntry.seq)
        )
        return list(rows.scalars())


async def test_one_pass_seals_every_final_entry_when_batches_end_short(
    app: FastAPI, make_tenant: Any
) -> None:
    """A batch ends at a transaction boundary (PostgreSQL), so it may hold fewer entries
    than its size and still leave final ones behind: the pass goes on until none is
    left. Here every transaction writes 3 entries and a batch holds 4."""
    database: Database = app.state.database
    tenant = await make_tenant()
    for _ in range(3):
        await _write(database, tenant.organisation_id, 3)
    await seal_all(database, batch=4)
    async with database.sessionmaker() as db:
        unsealed = await db.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .outerjoin(AuditSeal, AuditSeal.entry_seq == AuditEntry.seq)
            .where(AuditEntry.organisation_id == tenant.organisation_id)
            .where(AuditSeal.entry_seq.is_(None))
        )
    assert unsealed == 0
    (report,) = await verify(database, tenant.organisation_id)
    assert report.ok, report.as_dict()
    assert report.check.sealed == 9


async def test_sealed_chain_verifies_per_organisation(app: FastAPI, make_tenant: Any) -> None:
    database: Database = app.state.database
    one, two = await make_tenant(), await make_tenant()
    await _write(database, one.organisation_id, 5)
    await _write(database, two.organisation_id, 3)
    await seal_all(database)
    reports = {r.check.organisation_id: r for r in await verify(database)}
    for tenant, count in ((one, 5), (two, 3)):
        report = reports[tenant.organisation_id]
        assert report.ok, report.as_dict()
        assert (report.check.sealed, report.unsealed) == (count, 0)
    # Appending more continues each chain from its head.
    await _write(database, one.organisation_id, 2)
    (report,) = await verify(database, one.organisation_id)
    assert report.ok and report.check.sealed == 7


async def test_read_api(client: httpx.AsyncClient, app: FastAPI, make_tenant: Any) -> None:
    tenant, other = await make_tenant(), await make_tenant()
    for name in ("A", "B", "C"):
        response = await client.post(
            "/v1/buildings",
            json={"name": name, "address": "x", "building_type": "office"},
            headers=tenant.admin.headers,
        )
        assert response.status_code == 201
    await _write(app.state.database, other.organisation_id, 2)

    head = await client.get("/v1/audit/head", headers=tenant.viewer.headers)
    assert head.status_code == 200
    body = head.json()
    assert (body["position"], body["unsealed"]) == (3, 0)
    (report,) = await verify(app.state.database, tenant.organisation_id)
    assert body["hash"] == report.check.head_hash

    page = await client.get("/v1/audit?limit=2", headers=tenant.admin.headers)
    assert page.status_code == 200
    first = page.json()
    assert [e["payload"]["name"] for e in first["data"]] == ["C", "B"]
    assert first["data"][0]["chain"] == {"position": 3, "hash": body["hash"]}
    rest = await client.get(
        f"/v1/audit?limit=2&cursor={first['next_cursor']}", headers=tenant.admin.headers
    )
    assert [e["payload"]["name"] for e in rest.json()["data"]] == ["A"]
    assert rest.json()["next_cursor"] is None

    subject = first["data"][0]["subject_id"]
    filtered = await client.get(
        "/v1/audit",
        params={
            "subject_type": "building",
            "subject_id": subject,
            "actor_id": str(tenant.admin.id),
        },
        headers=tenant.viewer.headers,
    )
    assert [e["subject_id"] for e in filtered.json()["data"]] == [subject]
    none = await client.get(
        "/v1/audit", params={"actor_id": str(tenant.viewer.id)}, headers=tenant.viewer.headers
    )
    assert none.json() == {"data": [], "next_cursor": None}
    created = first["data"][1]["created_at"]
    window = await client.get(
        "/v1/audit",
        params={"from": created, "to": first["data"][0]["created_at"]},
        headers=tenant.viewer.headers,
    )
    assert [e["payload"]["name"] for e in window.json()["data"]] == ["B"]

    assert (await client.get("/v1/audit", headers=tenant.technician.headers)).status_code == 403
    assert (
        await client.get("/v1/audit/head", headers=tenant.technician.headers)
    ).status_code == 403
    assert (await client.get("/v1/audit")).status_code == 401


async def _superuser_edit(database: Database, *statements: str) -> None:
    """Edit the trail behind the application's back: triggers (and foreign keys) off."""
    async with database.engine.connect() as conn:
        await conn.execute(text("SET LOCAL session_replication_role = replica"))
        for statement in statements:
            await conn.execute(text(statement))
        await conn.commit()


async def _break(app: FastAPI, make_tenant: Any) -> tuple[Database, uuid.UUID, list[int]]:
    database: Database = app.state.database
    tenant = await make_tenant()
    seqs = await _write(database, tenant.organisation_id, 6)
    await seal_all(database)
    (report,) = await verify(database, tenant.organisation_id)
    assert report.ok
    return database, tenant.organisation_id, seqs


@pytest.mark.postgres
async def test_verify_names_a_changed_payload(app: FastAPI, make_tenant: Any) -> None:
    database, org, seqs = await _break(app, make_tenant)
    await _superuser_edit(
        database,
        f"UPDATE audit_entries SET payload = '{{\"index\": 99}}' WHERE seq = {seqs[3]}",
    )
    (report,) = await verify(database, org)
    assert not report.ok
    assert report.check.first_break is not None
    assert (report.check.first_break.position, report.check.first_break.entry_seq) == (4, seqs[3])


@pytest.mark.postgres
async def test_verify_names_a_deleted_entry(app: FastAPI, make_tenant: Any) -> None:
    database, org, seqs = await _break(app, make_tenant)
    await _superuser_edit(database, f"DELETE FROM audit_entries WHERE seq = {seqs[2]}")
    (report,) = await verify(database, org)
    brk = report.check.first_break
    assert brk is not None and (brk.position, brk.entry_seq) == (3, seqs[2])
    assert "no longer exists" in brk.reason
    # Removing the seal too leaves a hole in the positions.
    await _superuser_edit(database, f"DELETE FROM audit_seals WHERE entry_seq = {seqs[2]}")
    (report,) = await verify(database, org)
    brk = report.check.first_break
    assert brk is not None and brk.position == 3 and "missing" in brk.reason


@pytest.mark.postgres
async def test_verify_names_a_reordered_pair(app: FastAPI, make_tenant: Any) -> None:
    database, org, seqs = await _break(app, make_tenant)
    a, b = seqs[1], seqs[2]
    await _superuser_edit(
        database,
        f"UPDATE audit_entries SET seq = -1 WHERE seq = {a}",
        f"UPDATE audit_entries SET seq = {a} WHERE seq = {b}",
        f"UPDATE audit_entries SET seq = {b} WHERE seq = -1",
    )
    (report,) = await verify(database, org)
    brk = report.check.first_break
    assert brk is not None and (brk.position, brk.entry_seq) == (2, a)


@pytest.mark.postgres
async def test_verify_detects_a_removed_head_and_an_anchor_mismatch(
    app: FastAPI, make_tenant: Any
) -> None:
    database, org, seqs = await _break(app, make_tenant)
    (before,) = await verify(database, org)
    anchor = (before.check.head_position, before.check.head_hash)
    await _superuser_edit(database, f"DELETE FROM audit_seals WHERE entry_seq = {seqs[-1]}")
    # The entry is now below the sealed watermark without a seal: inserted, or unsealed.
    (report,) = await verify(database, org)
    brk = report.check.first_break
    assert brk is not None and brk.entry_seq == seqs[-1]
    (anchored,) = await verify(database, org, anchor)
    assert anchored.check.first_break is not None
    assert "anchored" in anchored.check.first_break.reason


async def test_update_and_delete_are_refused(app: FastAPI, make_tenant: Any) -> None:
    database, org, seqs = await _break(app, make_tenant)
    statements = [
        f"UPDATE audit_entries SET action = 'x' WHERE seq = {seqs[0]}",
        f"DELETE FROM audit_entries WHERE seq = {seqs[0]}",
        f"UPDATE audit_seals SET hash = 'x' WHERE entry_seq = {seqs[0]}",
        f"DELETE FROM audit_seals WHERE entry_seq = {seqs[0]}",
    ]
    if TEST_BACKEND == "postgresql":
        statements += ["TRUNCATE audit_entries CASCADE", "TRUNCATE audit_seals"]
    for statement in statements:
        async with database.engine.connect() as conn:
            with pytest.raises(DBAPIError, match="append-only"):
                await conn.execute(text(statement))
    (report,) = await verify(database, org)
    assert report.ok and report.check.sealed == 6


@pytest.mark.postgres
async def test_sealer_waits_for_an_open_transaction(app: FastAPI, make_tenant: Any) -> None:
    """An entry inserted by a transaction still open holds back every later entry: the
    sealer never seals past it, and seals it in place once it commits."""
    database: Database = app.state.database
    tenant = await make_tenant()
    org = tenant.organisation_id
    async with database.sessionmaker() as slow:
        await audit.record(
            slow,
            organisation_id=org,
            actor=audit.SYSTEM,
            action="slow",
            subject_type="t",
            subject_id="slow",
        )
        await _write(database, org, 2)  # committed while "slow" is open, with later txids
        await seal_all(database)
        async with database.sessionmaker() as db:
            sealed = (
                await db.execute(
                    select(AuditSeal.entry_seq).where(AuditSeal.organisation_id == org)
                )
            ).all()
        assert sealed == []  # "slow" is still open and older: nothing after it is final
        await slow.commit()
    await seal_all(database)
    (report,) = await verify(database, org)
    assert report.ok and (report.check.sealed, report.unsealed) == (3, 0)
    async with database.sessionmaker() as db:
        first = await db.scalar(
            select(AuditEntry.action)
            .join(AuditSeal, AuditSeal.entry_seq == AuditEntry.seq)
            .where(AuditSeal.organisation_id == org, AuditSeal.position == 1)
        )
    assert first == "slow"


_facts = st.builds(
    lambda i, action, payload: EntryFacts(
        seq=i,
        id=uuid.UUID(int=i),
        organisation_id=uuid.UUID(int=1),
        actor_type="system",
        actor_id=None,
        action=action,
        subject_type="t",
        subject_id=str(i),
        payload=payload,
        transaction_id="tx",
        created_at=utc_now(),
    ),
    st.integers(1, 10**9),
    st.text(max_size=8),
    st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=4),
)


@given(st.lists(_facts, min_size=1, max_size=8, unique_by=lambda f: f.seq), st.data())
def test_any_single_change_breaks_the_chain_at_that_link(
    entries: list[EntryFacts], data: st.DataObject
) -> None:
    org = uuid.UUID(int=1)
    links, previous = [], genesis_hash(org)
    for position, entry in enumerate(entries, start=1):
        previous = link_hash(previous, entry)
        links.append(SealedLink(position, entry.seq, previous, entry))
    assert verify_links(org, links).first_break is None
    victim = data.draw(st.integers(0, len(links) - 1))
    original = links[victim]
    assert original.entry is not None
    changed = EntryFacts(
        **{
            **{f: getattr(original.entry, f) for f in EntryFacts.__slots__},
            "action": original.entry.action + "!",
        }
    )
    tampered = [
        *links[:victim],
        SealedLink(original.position, original.entry_seq, original.hash, changed),
        *links[victim + 1 :],
    ]
    brk = verify_links(org, tampered).first_break
    assert brk is not None and brk.position == victim + 1


@pytest.mark.postgres
async def test_transactions_of_other_databases_do_not_hold_sealing_back(
    app: FastAPI, make_tenant: Any, admin_dsn: str
) -> None:
    database: Database = app.state.database
    tenant = await make_tenant()
    elsewhere = await asyncpg.connect(admin_dsn)  # the server's maintenance database
    try:
        transaction = elsewhere.transaction()
        await transaction.start()
        await elsewhere.fetchval("SELECT pg_current_xact_id()")  # holds an id, stays open
        await _write(database, tenant.organisation_id, 2)
        await seal_all(database)
        (report,) = await verify(database, tenant.organisation_id)
        assert report.ok and (report.check.sealed, report.unsealed) == (2, 0)
        await transaction.rollback()
    finally:
        await elsewhere.close()
