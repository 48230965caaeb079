"""`firemode users create` and `firemode demo seed`, run as real processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

from sqlalchemy import select

from src.app.core import migrations
from src.app.identity.models import Organisation, User
from tests.identity.conftest import client_for, login

ROOT = Path(__file__).resolve().parents[2]


def firemode(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "src.app.cli", *args],
        cwd=ROOT,
        env={**os.environ, "FIREMODE_LOG_LEVEL": "WARNING", **(env or {})},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        # No controlling terminal: the hidden prompt reads stdin instead of /dev/tty.
        start_new_session=True,
    )


async def test_users_create_from_flag_and_from_environment(http, app):
    org = f"CLI Org {uuid.uuid4().hex[:8]}"
    first = f"cli-{uuid.uuid4().hex[:8]}@Example.com"
    second = f"cli-{uuid.uuid4().hex[:8]}@example.com"
    password = "a long cli password"
    made = firemode(
        "users", "create", "--org", org, "--email", first, "--role", "admin", "--password", password
    )
    assert made.returncode == 0, made.stderr
    assert f"Created admin {first.lower()} " in made.stdout
    assert password not in made.stdout + made.stderr
    env_password = "another long password"
    again = firemode(
        "users",
        "create",
        "--org",
        org,
        "--email",
        second,
        "--role",
        "viewer",
        env={"FIREMODE_NEW_PASSWORD": env_password},
    )
    assert again.returncode == 0, again.stderr
    assert env_password not in again.stdout + again.stderr
    # One organisation, created by the first command, reused by the second.
    async with app.state.database.sessionmaker() as session:
        orgs = (await session.execute(select(Organisation).where(Organisation.name == org))).all()
        assert len(orgs) == 1
        users = (
            await session.execute(
                select(User.email, User.role).where(User.organisation_id == orgs[0][0].id)
            )
        ).all()
    assert sorted(users) == sorted([(first.lower(), "admin"), (second, "viewer")])
    await login(http, first, password)
    await login(http, second, env_password)


async def test_users_create_prompts_for_the_password():
    email = f"cli-{uuid.uuid4().hex[:8]}@example.com"
    password = "typed at the prompt"
    result = firemode(
        "users",
        "create",
        "--org",
        f"Prompt Org {uuid.uuid4().hex[:8]}",
        "--email",
        email,
        "--role",
        "technician",
        env={"FIREMODE_NEW_PASSWORD": ""},
        stdin=f"{password}\n{password}\n",
    )
    assert result.returncode == 0, result.stderr
    assert password not in result.stdout + result.stderr
    assert f"Created technician {email}" in result.stdout


async def test_users_create_refuses_a_short_password(app):
    email = f"cli-{uuid.uuid4().hex[:8]}@example.com"
    org = f"Refused Org {uuid.uuid4().hex[:8]}"
    result = firemode(
        "users", "create", "--org", org, "--email", email, "--role", "admin", "--password", "short"
    )
    assert result.returncode == 2
    assert "error: the password must have 8 to 1024 characters" in result.stderr
    async with app.state.database.sessionmaker() as session:
        assert (await session.execute(select(User).where(User.email == email))).first() is None
        assert (
            await session.execute(select(Organisation).where(Organisation.name == org))
        ).first() is None


async def test_users_create_refuses_a_taken_email(make_tenant):
    tenant = await make_tenant()
    result = firemode(
        "users",
        "create",
        "--org",
        "Other",
        "--email",
        tenant.viewer.email.upper(),
        "--role",
        "viewer",
        "--password",
        "long enough pw",
    )
    assert result.returncode == 1
    assert f"a user with the email {tenant.viewer.email} already exists" in result.stderr


async def test_demo_seed_on_an_empty_database(tmp_path: Path, make_app):
    env = {"FIREMODE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"}
    await asyncio.to_thread(migrations.upgrade, env["FIREMODE_DATABASE_URL"])
    seeded = firemode("demo", "seed", "--if-empty", env=env)
    assert seeded.returncode == 0, seeded.stderr
    lines = [
        line.split() for line in seeded.stdout.splitlines() if "@demo.firemode.example" in line
    ]
    assert [line[0] for line in lines] == ["admin", "technician", "viewer"]
    credentials = {line[0]: (line[1], line[2]) for line in lines}
    # Printed once: the passwords are nowhere in the log output.
    assert all(password not in seeded.stderr for _, password in credentials.values())

    skipped = firemode("demo", "seed", "--if-empty", env=env)
    assert skipped.returncode == 0
    assert skipped.stdout.strip() == "Users exist already: demo seed skipped."
    refused = firemode("demo", "seed", env=env)
    assert refused.returncode == 1
    assert "the demo organisation or its users exist already" in refused.stderr

    demo = make_app(database_url=env["FIREMODE_DATABASE_URL"])
    async with client_for(demo) as client:
        for role, (email, password) in credentials.items():
            tokens = await login(client, email, password)
            me = await client.get("/v1/users/me", headers=tokens.headers)
            assert me.json()["role"] == role
