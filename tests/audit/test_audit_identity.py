"""Identity changes write exactly one entry each: logins, logouts, revocations, users."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from src.app.core.audit_model import AuditEntry
from src.app.core.tenancy import Role
from src.app.identity.service import create_user
from src.app.identity.tokens import decode_access_token
from tests.audit.conftest import entries_of, one_entry, tx_headers
from tests.conftest import TEST_PASSWORD


async def _login(client: httpx.AsyncClient, email: str) -> tuple[dict[str, Any], str]:
    headers, tx = tx_headers({})
    response = await client.post(
        "/v1/auth/login", json={"email": email, "password": TEST_PASSWORD}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body, tx


async def test_login_logout_and_failed_login(
    client: httpx.AsyncClient, app: FastAPI, make_tenant: Any
) -> None:
    tenant = await make_tenant()
    tokens, tx = await _login(client, tenant.technician.email)
    entry = await one_entry(app, tx)
    assert (entry.action, entry.subject_id, entry.actor_id) == (
        "auth.login",
        str(tenant.technician.id),
        tenant.technician.id,
    )
    assert set(entry.payload) == {"jti", "client"}  # never a token

    headers, tx = tx_headers({})
    failed = await client.post(
        "/v1/auth/login",
        json={"email": tenant.technician.email, "password": "wrong" * 3},
        headers=headers,
    )
    assert failed.status_code == 401
    assert await entries_of(app, tx) == []

    headers, tx = tx_headers({"Authorization": f"Bearer {tokens['access_token']}"})
    assert (await client.post("/v1/auth/logout", headers=headers)).status_code == 204
    entry = await one_entry(app, tx)
    assert (entry.action, entry.actor_id) == ("auth.logout", tenant.technician.id)


async def test_refresh_reuse_revokes_and_is_recorded(
    client: httpx.AsyncClient, app: FastAPI, make_tenant: Any
) -> None:
    tenant = await make_tenant()
    tokens, _ = await _login(client, tenant.viewer.email)
    headers, tx = tx_headers({})
    first = await client.post(
        "/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}, headers=headers
    )
    assert first.status_code == 200
    assert await entries_of(app, tx) == []  # a rotation changes nothing worth recording
    second = await client.post(
        "/v1/auth/refresh", json={"refresh_token": first.json()["refresh_token"]}
    )
    assert second.status_code == 200
    headers, tx = tx_headers({})
    reused = await client.post(
        "/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}, headers=headers
    )
    assert reused.status_code == 401
    entry = await one_entry(app, tx)
    assert (entry.action, entry.actor_type, entry.subject_id) == (
        "auth.refresh_reuse_revoked",
        "system",
        str(tenant.viewer.id),
    )


async def test_revocations_and_user_changes(
    client: httpx.AsyncClient, app: FastAPI, make_tenant: Any
) -> None:
    tenant = await make_tenant()
    tokens, _ = await _login(client, tenant.technician.email)
    jti = decode_access_token(app.state.settings, tokens["access_token"]).jti
    headers, tx = tx_headers(tenant.admin.headers)
    revoked = await client.post("/v1/auth/revocations", json={"jti": jti}, headers=headers)
    assert revoked.status_code == 201
    entry = await one_entry(app, tx)
    assert (entry.action, entry.subject_id, entry.payload["jti"]) == (
        "auth.token_revoked",
        str(tenant.technician.id),
        jti,
    )
    headers, tx = tx_headers(tenant.admin.headers)
    again = await client.post("/v1/auth/revocations", json={"jti": jti}, headers=headers)
    assert again.status_code == 200
    assert await entries_of(app, tx) == []  # already revoked: nothing changed

    headers, tx = tx_headers(tenant.admin.headers)
    all_of = await client.post(
        "/v1/auth/revocations", json={"user_id": str(tenant.viewer.id)}, headers=headers
    )
    assert all_of.status_code == 201
    entry = await one_entry(app, tx)
    assert (entry.action, entry.subject_id) == ("auth.all_tokens_revoked", str(tenant.viewer.id))

    headers, tx = tx_headers(tenant.admin.headers)
    email = f"new-{uuid.uuid4().hex[:8]}@firemode.test"
    created = await client.post(
        "/v1/users",
        json={"email": email, "password": TEST_PASSWORD, "role": "technician"},
        headers=headers,
    )
    assert created.status_code == 201
    entry = await one_entry(app, tx)
    assert (entry.action, entry.actor_id, entry.payload) == (
        "user.created",
        tenant.admin.id,
        {"email": email, "role": "technician"},
    )

    headers, tx = tx_headers(tenant.admin.headers)
    changed = await client.patch(
        f"/v1/users/{created.json()['id']}", json={"role": "viewer"}, headers=headers
    )
    assert changed.status_code == 200
    entry = await one_entry(app, tx)
    assert (entry.action, entry.payload) == (
        "user.updated",
        {"changes": {"role": "viewer"}, "tokens_revoked": True},
    )
    headers, tx = tx_headers(tenant.admin.headers)
    unchanged = await client.patch(
        f"/v1/users/{created.json()['id']}", json={"role": "viewer"}, headers=headers
    )
    assert unchanged.status_code == 200
    assert await entries_of(app, tx) == []


async def test_users_created_outside_a_request_are_recorded_as_system(
    app: FastAPI, make_tenant: Any, password_hash: str
) -> None:
    tenant = await make_tenant()
    async with app.state.database.sessionmaker() as db:
        user = await create_user(
            db,
            organisation_id=tenant.organisation_id,
            email=f"cli-{uuid.uuid4().hex[:8]}@firemode.test",
            password_hash=password_hash,
            role=Role.viewer,
        )
        await db.commit()
    async with app.state.database.sessionmaker() as db:
        found = (
            (await db.execute(select(AuditEntry).where(AuditEntry.subject_id == str(user.id))))
            .scalars()
            .all()
        )
    assert [(e.action, e.actor_type, e.actor_id) for e in found] == [
        ("user.created", "system", None)
    ]
