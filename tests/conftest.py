"""Test harness shared by every test module.

The database is real: a fresh SQLite file (``FIREMODE_TEST_BACKEND=sqlite``, the default) or
a fresh PostgreSQL database created on the server named by ``FIREMODE_TEST_DATABASE_URL``
(``FIREMODE_TEST_BACKEND=postgresql``). It is migrated with Alembic before any test runs,
because ``httpx.ASGITransport`` never runs the app's lifespan.

The user's tests send ``Authorization: Bearer test-token``. Only the token-decoding step is
overridden for them: ``test-token`` maps to the claims of a seeded technician; every other
token goes through the real decoder, and the revocation check and user lookup stay real.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import make_url

TEST_BACKEND = os.environ.get("FIREMODE_TEST_BACKEND", "sqlite")
TEST_SECRET = "test-secret-" + "x" * 40
TEST_PASSWORD = "correct horse battery staple"


def _create_postgres_database() -> tuple[str, str]:
    import asyncpg

    admin_url = os.environ.get("FIREMODE_TEST_DATABASE_URL")
    if not admin_url:
        raise RuntimeError(
            "FIREMODE_TEST_BACKEND=postgresql needs FIREMODE_TEST_DATABASE_URL "
            "(e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/postgres)"
        )
    url = make_url(admin_url)
    name = f"fm_test_{uuid.uuid4().hex[:12]}"
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)

    async def create() -> None:
        connection = await asyncpg.connect(dsn, timeout=10)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    asyncio.run(create())
    return url.set(database=name).render_as_string(hide_password=False), dsn


def _drop_postgres_database(admin_dsn: str, name: str) -> None:
    import asyncpg

    async def drop() -> None:
        connection = await asyncpg.connect(admin_dsn, timeout=10)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()

    asyncio.run(drop())


_TEMP_DIR = Path(tempfile.mkdtemp(prefix="firemode-test-"))
if TEST_BACKEND == "postgresql":
    DATABASE_URL, _ADMIN_DSN = _create_postgres_database()
elif TEST_BACKEND == "sqlite":
    DATABASE_URL, _ADMIN_DSN = f"sqlite+aiosqlite:///{_TEMP_DIR / 'firemode.db'}", ""
else:
    raise RuntimeError(f"FIREMODE_TEST_BACKEND must be sqlite or postgresql, not {TEST_BACKEND}")

# Set before the app is imported anywhere, so its settings see the test database.
os.environ["FIREMODE_DATABASE_URL"] = DATABASE_URL
os.environ["FIREMODE_ENV"] = "test"
os.environ["FIREMODE_JWT_SECRET"] = TEST_SECRET
os.environ.pop("FIREMODE_REDIS_URL", None)

import httpx  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402

from src.app.core import migrations  # noqa: E402
from src.app.core.settings import Settings  # noqa: E402
from src.app.core.tenancy import Role  # noqa: E402
from src.app.identity.dependencies import (  # noqa: E402
    TokenDecoder,
    get_access_token_decoder,
)
from src.app.identity.models import Organisation, User  # noqa: E402
from src.app.identity.passwords import hash_password_sync  # noqa: E402
from src.app.identity.tokens import (  # noqa: E402
    AccessClaims,
    decode_access_token,
    issue_access_token,
)
from src.app.main import app as the_app  # noqa: E402

TEST_TOKEN = "test-token"
TEST_TOKEN_USER_ID = uuid.UUID("00000000-0000-4000-8000-00000000feed")
TEST_TOKEN_ORG_ID = uuid.UUID("00000000-0000-4000-8000-0000000000f1")
TEST_TOKEN_JTI = "test-token-jti"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if TEST_BACKEND == "postgresql":
        _drop_postgres_database(_ADMIN_DSN, make_url(DATABASE_URL).database or "")


@pytest.fixture(scope="session")
def database_url() -> str:
    return DATABASE_URL


@pytest.fixture(scope="session")
def admin_dsn() -> str:
    """asyncpg DSN of the PostgreSQL server's maintenance database (postgres runs only)."""
    if TEST_BACKEND != "postgresql":
        raise RuntimeError("admin_dsn is only available in the PostgreSQL run")
    return _ADMIN_DSN


@pytest.fixture(scope="session")
def password_hash() -> str:
    """One Argon2 hash of TEST_PASSWORD, shared, because each hash costs ~0.2 s."""
    return hash_password_sync(TEST_PASSWORD)


@pytest.fixture(scope="session", autouse=True)
def migrated_database() -> Iterator[str]:
    migrations.upgrade(DATABASE_URL)
    yield DATABASE_URL


def _test_token_claims() -> AccessClaims:
    now = datetime.now(UTC).replace(microsecond=0)
    return AccessClaims(
        user_id=TEST_TOKEN_USER_ID,
        organisation_id=TEST_TOKEN_ORG_ID,
        role=Role.technician.value,
        jti=TEST_TOKEN_JTI,
        issued_at=now - timedelta(seconds=1),
        expires_at=now + timedelta(minutes=15),
    )


def _decoder_with_test_token(request: Request) -> TokenDecoder:
    settings: Settings = request.app.state.settings

    def decode(token: str) -> AccessClaims:
        if token == TEST_TOKEN:
            return _test_token_claims()
        return decode_access_token(settings, token)

    return decode


@pytest.fixture(scope="session")
def app(migrated_database: str) -> FastAPI:
    return the_app


@pytest.fixture(scope="session", autouse=True)
async def seeded_test_token_user(migrated_database: str, password_hash: str) -> None:
    """The user behind ``test-token``: a technician alone in its own organisation."""
    async with the_app.state.database.sessionmaker() as session:
        if await session.get(User, TEST_TOKEN_USER_ID) is None:
            session.add(Organisation(id=TEST_TOKEN_ORG_ID, name="Phase 2 validation"))
            await session.flush()
            session.add(
                User(
                    id=TEST_TOKEN_USER_ID,
                    organisation_id=TEST_TOKEN_ORG_ID,
                    email="validation-technician@firemode.test",
                    password_hash=password_hash,
                    role=Role.technician.value,
                )
            )
            await session.commit()
    the_app.dependency_overrides[get_access_token_decoder] = _decoder_with_test_token


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        yield http


@dataclass
class TestUser:
    __test__ = False

    id: uuid.UUID
    email: str
    role: Role
    organisation_id: uuid.UUID
    token: str
    password: str = TEST_PASSWORD

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Tenant:
    """An organisation with one active user of each role, each holding a real access token."""

    organisation_id: uuid.UUID
    name: str
    admin: TestUser
    technician: TestUser
    viewer: TestUser
    users: dict[str, TestUser] = field(default_factory=dict)


@pytest.fixture
def make_tenant(app: FastAPI, password_hash: str):  # type: ignore[no-untyped-def]
    """``await make_tenant()`` creates a fresh organisation with an admin, a technician
    and a viewer, and real signed access tokens for them."""
    settings: Settings = app.state.settings

    async def factory(name: str | None = None) -> Tenant:
        suffix = uuid.uuid4().hex[:10]
        org = Organisation(id=uuid.uuid4(), name=name or f"Org {suffix}")
        people: dict[str, TestUser] = {}
        async with app.state.database.sessionmaker() as session:
            session.add(org)
            await session.flush()
            for role in Role:
                user = User(
                    id=uuid.uuid4(),
                    organisation_id=org.id,
                    email=f"{role.value}-{suffix}@firemode.test",
                    password_hash=password_hash,
                    role=role.value,
                )
                session.add(user)
                issued = issue_access_token(
                    settings, user_id=user.id, organisation_id=org.id, role=role.value
                )
                people[role.value] = TestUser(user.id, user.email, role, org.id, issued.token)
            await session.commit()
        return Tenant(
            org.id, org.name, people["admin"], people["technician"], people["viewer"], people
        )

    return factory
