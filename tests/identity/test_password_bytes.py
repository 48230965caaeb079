"""Passwords are the characters their user chose: never stripped; NFC normalisation is
the one transformation, the same on every path that hashes or verifies; 8-1024
characters, enforced alike by the API and the CLI."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import typer
from fastapi import FastAPI
from sqlalchemy import func, select

from src.app.identity import cli as identity_cli
from src.app.identity import passwords
from src.app.identity.models import User
from src.app.identity.passwords import hash_password, verify_password
from tests.identity.conftest import client_for
from tests.identity.test_cli import firemode

DECOMPOSED = "cafe\u0301 au lait"  # "e" + combining acute accent
COMPOSED = "caf\u00e9 au lait"  # "é" as one code point


async def _create(app: FastAPI, admin: Any, password: str) -> Any:
    async with client_for(app) as client:
        return await client.post(
            "/v1/users",
            json={
                "email": f"pw-{uuid.uuid4().hex[:10]}@example.com",
                "password": password,
                "role": "technician",
            },
            headers=admin.headers,
        )


async def _login(app: FastAPI, email: str, password: str) -> int:
    async with client_for(app) as client:
        response = await client.post("/v1/auth/login", json={"email": email, "password": password})
    return response.status_code


async def _user_count(app: FastAPI) -> int:
    async with app.state.database.sessionmaker() as db:
        return int(await db.scalar(select(func.count()).select_from(User)) or 0)


async def test_spaces_around_an_api_password_are_part_of_it(app: FastAPI, make_tenant: Any):
    tenant = await make_tenant()
    password = "  spaced out password  "
    created = await _create(app, tenant.admin, password)
    assert created.status_code == 201, created.text
    email = created.json()["email"]
    assert await _login(app, email, password) == 200
    assert await _login(app, email, password.strip()) == 401


async def test_a_cli_password_with_spaces_logs_in_through_the_api(app: FastAPI):
    email = f"cli-pw-{uuid.uuid4().hex[:8]}@example.com"
    password = " leading and trailing "
    made = firemode(
        "users",
        "create",
        "--org",
        f"Spaced {uuid.uuid4().hex[:6]}",
        "--email",
        email,
        "--role",
        "viewer",
        env={"FIREMODE_NEW_PASSWORD": password},
    )
    assert made.returncode == 0, made.stderr
    assert await _login(app, email, password) == 200
    assert await _login(app, email, password.strip()) == 401


async def test_nfc_is_the_one_transformation(app: FastAPI, make_tenant: Any):
    tenant = await make_tenant()
    created = await _create(app, tenant.admin, DECOMPOSED)
    assert created.status_code == 201, created.text
    email = created.json()["email"]
    assert await _login(app, email, COMPOSED) == 200
    assert await _login(app, email, DECOMPOSED) == 200
    # The hashing and verifying helpers agree whichever form they are given.
    stored = await hash_password(COMPOSED)
    assert (await verify_password(DECOMPOSED, stored))[0] is True
    assert (await verify_password(COMPOSED.upper(), stored))[0] is False


@pytest.mark.parametrize(
    ("password", "accepted"),
    [
        ("x" * 7, False),
        ("x" * 8, True),
        ("x" * 1024, True),
        ("x" * 1025, False),
        ("       ", False),  # seven spaces: not stripped to nothing, but still too short
        ("        ", True),  # eight spaces are eight characters
        ("abcde\u0301f", False),  # 7 code points: 6 characters once normalised
        ("abcdefg\u0301", False),  # 8 code points, 7 characters after NFC
    ],
)
async def test_api_and_cli_enforce_the_same_length(
    app: FastAPI, make_tenant: Any, password: str, accepted: bool
):
    tenant = await make_tenant()
    before = await _user_count(app)
    response = await _create(app, tenant.admin, password)
    assert response.status_code == (201 if accepted else 422), response.text
    assert await _user_count(app) == before + (1 if accepted else 0)
    if accepted:
        assert identity_cli._choose_password(password) == password
    else:
        assert [e["pointer"] for e in response.json()["errors"]] == ["/password"]
        with pytest.raises(typer.Exit) as refused:
            identity_cli._choose_password(password)
        assert refused.value.exit_code == 2


async def test_a_replayed_user_creation_hashes_nothing(
    app: FastAPI, make_tenant: Any, monkeypatch: pytest.MonkeyPatch
):
    tenant = await make_tenant()
    hashed: list[str] = []
    real = passwords.hash_password_sync

    def counting(password: str) -> str:
        hashed.append(password)
        return real(password)

    monkeypatch.setattr(passwords, "hash_password_sync", counting)
    body = {"email": f"replay-{uuid.uuid4().hex[:8]}@example.com", "password": "p" * 12}
    headers = {**tenant.admin.headers, "Idempotency-Key": f"user-{uuid.uuid4()}"}
    async with client_for(app) as client:
        first = await client.post("/v1/users", json={**body, "role": "viewer"}, headers=headers)
        assert first.status_code == 201, first.text
        assert len(hashed) == 1
        again = await client.post("/v1/users", json={**body, "role": "viewer"}, headers=headers)
        other = await client.post("/v1/users", json={**body, "role": "admin"}, headers=headers)
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert other.status_code == 422  # same key, another body: refused, nothing hashed
    assert len(hashed) == 1
