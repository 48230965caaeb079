"""Two admins demoting (or deactivating) each other at the same moment: exactly one wins,
the other is refused, and the organisation keeps an active admin.

Deterministic: the database's write lock (SQLite) or the two users' rows (PostgreSQL) are
held by the test while both requests pass authentication and reach their write; only
then is the lock released."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select, update

from src.app.identity.models import User
from tests.conftest import TEST_PASSWORD
from tests.identity.conftest import Tokens, login

ACTOR_NOT_ADMIN = (
    "You are no longer an active admin (your role or active flag changed meanwhile); "
    "nothing was changed"
)


async def second_admin(http: httpx.AsyncClient, tenant) -> tuple[uuid.UUID, Tokens]:
    created = await http.post(
        "/v1/users",
        json={
            "email": f"admin2-{uuid.uuid4().hex[:8]}@firemode.test",
            "password": TEST_PASSWORD,
            "role": "admin",
        },
        headers=tenant.admin.headers,
    )
    assert created.status_code == 201, created.text
    return uuid.UUID(created.json()["id"]), await login(http, created.json()["email"])


@asynccontextmanager
async def writes_held(app, user_ids: list[uuid.UUID], count: int) -> AsyncIterator[asyncio.Event]:
    """Hold what the user update's write needs; yields an event set once ``count``
    requests reached their write (its first statement, which waits for the holder)."""
    engine = app.state.database.engine
    sqlite = engine.dialect.name == "sqlite"
    arrived: list[str] = []
    all_arrived = asyncio.Event()

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # Runs on the event loop's thread (SQLAlchemy's async greenlet).
        if (sqlite and statement == "BEGIN IMMEDIATE") or (
            not sqlite and "FOR UPDATE" in statement and "FROM users" in statement
        ):
            arrived.append(statement)
            if len(arrived) >= count:
                all_arrived.set()

    async with engine.connect() as holder:
        if sqlite:
            await holder.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            await holder.execute(select(User.id).where(User.id.in_(user_ids)).with_for_update())
        event.listen(engine.sync_engine, "before_cursor_execute", seen)
        try:
            yield all_arrived
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", seen)
            await holder.rollback()


@pytest.mark.parametrize("change", [{"role": "technician"}, {"is_active": False}])
async def test_two_admins_demoting_each_other_at_once(
    http: httpx.AsyncClient, make_tenant, app, change: dict[str, object]
):
    tenant = await make_tenant()
    other_id, other = await second_admin(http, tenant)
    first_headers = tenant.admin.headers
    async with writes_held(app, [tenant.admin.id, other_id], count=2) as arrived:
        one = asyncio.create_task(
            http.patch(f"/v1/users/{other_id}", json=change, headers=first_headers)
        )
        two = asyncio.create_task(
            http.patch(f"/v1/users/{tenant.admin.id}", json=change, headers=other.headers)
        )
        async with asyncio.timeout(10):
            await arrived.wait()  # both authenticated, both at their write
    responses = await asyncio.gather(one, two)
    assert sorted(r.status_code for r in responses) == [200, 409]
    refused = next(r for r in responses if r.status_code == 409)
    assert refused.json()["error_code"] == "FIRE-409"
    assert refused.json()["detail"] == ACTOR_NOT_ADMIN
    winner_headers = first_headers if responses[0].status_code == 200 else other.headers
    admins = await http.get(
        "/v1/users", params={"role": "admin", "is_active": "true"}, headers=winner_headers
    )
    assert admins.status_code == 200
    survivor = tenant.admin.id if responses[0].status_code == 200 else other_id
    assert [uuid.UUID(u["id"]) for u in admins.json()["data"]] == [survivor]


async def test_a_caller_demoted_behind_their_token_changes_nothing(
    http: httpx.AsyncClient, make_tenant, app
):
    """The token still says admin (no revoke-all recorded), the row says otherwise: the
    row, re-read inside the write, wins."""
    tenant = await make_tenant()
    other_id, other = await second_admin(http, tenant)
    async with app.state.database.sessionmaker() as session:
        await session.execute(update(User).where(User.id == other_id).values(role="technician"))
        await session.commit()
    response = await http.patch(
        f"/v1/users/{tenant.admin.id}", json={"is_active": False}, headers=other.headers
    )
    assert response.status_code == 409
    assert response.json()["detail"] == ACTOR_NOT_ADMIN
    me = await http.get("/v1/users/me", headers=tenant.admin.headers)
    assert me.json()["role"] == "admin" and me.json()["is_active"] is True
