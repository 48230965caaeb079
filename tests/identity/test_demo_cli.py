"""`firemode demo reset`: demo access can always be recovered, run as a real process."""

from __future__ import annotations

import asyncio
from pathlib import Path

from src.app.core import migrations
from tests.identity.conftest import client_for, login
from tests.identity.test_cli import firemode

INVALID_CREDENTIALS = "The email or password is incorrect"


def _credentials(stdout: str) -> dict[str, tuple[str, str]]:
    lines = [line.split() for line in stdout.splitlines() if "@demo.firemode.example" in line]
    return {line[0]: (line[1], line[2]) for line in lines}


async def test_demo_reset_prints_new_passwords_and_only_they_work(tmp_path: Path, make_app):
    env = {"FIREMODE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"}
    await asyncio.to_thread(migrations.upgrade, env["FIREMODE_DATABASE_URL"])
    seeded = firemode("demo", "seed", "--if-empty", env=env)
    assert seeded.returncode == 0, seeded.stderr
    old = _credentials(seeded.stdout)
    assert "firemode demo reset" in seeded.stdout
    skipped = firemode("demo", "seed", "--if-empty", env=env)
    assert "firemode demo reset" in skipped.stderr  # the way back, shown where it is needed

    reset = firemode("demo", "reset", env=env)
    assert reset.returncode == 0, reset.stderr
    new = _credentials(reset.stdout)
    assert sorted(new) == ["admin", "technician", "viewer"]
    assert {email for email, _ in new.values()} == {email for email, _ in old.values()}
    assert all(new[role][1] != old[role][1] for role in new)
    assert all(password not in reset.stderr for _, password in new.values())

    demo = make_app(database_url=env["FIREMODE_DATABASE_URL"])
    async with client_for(demo) as client:
        for role, (email, password) in new.items():
            tokens = await login(client, email, password)
            me = await client.get("/v1/users/me", headers=tokens.headers)
            assert me.json()["role"] == role
            refused = await client.post(
                "/v1/auth/login", json={"email": email, "password": old[role][1]}
            )
            assert refused.status_code == 401
            assert refused.json()["detail"] == INVALID_CREDENTIALS


async def test_demo_reset_on_an_empty_database_creates_the_demo(tmp_path: Path, make_app):
    env = {"FIREMODE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"}
    await asyncio.to_thread(migrations.upgrade, env["FIREMODE_DATABASE_URL"])
    reset = firemode("demo", "reset", env=env)
    assert reset.returncode == 0, reset.stderr
    credentials = _credentials(reset.stdout)
    assert sorted(credentials) == ["admin", "technician", "viewer"]
    demo = make_app(database_url=env["FIREMODE_DATABASE_URL"])
    async with client_for(demo) as client:
        email, password = credentials["admin"]
        await login(client, email, password)
