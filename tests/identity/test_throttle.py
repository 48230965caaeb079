"""Login throttling: 429 FIRE-429 with Retry-After per (email, address) and per address,
a capped progressive delay per email that spares the owner's known addresses, counted in
the database or in Redis. Time is an injected clock: nothing here sleeps."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import httpx
import pytest
from fastapi import Depends, FastAPI
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from src.app.core.clock import utc_now
from src.app.core.settings import Settings
from src.app.identity.models import LoginFailure
from src.app.identity.revocation import RevocationChecker, get_revocation_checker
from src.app.identity.router import get_login_throttle
from src.app.identity.throttle import (
    LoginThrottle,
    email_delay_seconds,
    email_wait_seconds,
    retry_after_seconds,
    throttle_keys,
)
from tests.conftest import TEST_PASSWORD
from tests.identity.conftest import (
    REDIS_URL,
    assert_401,
    client_for,
    closed_port,
    next_client_address,
    redis_prefix,
)

WRONG = "not the password at all"
BACKENDS = ["database", "redis"]


class FakeClock:
    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def throttled_app(make_app, backend: str, **overrides: object) -> tuple[FastAPI, FakeClock]:
    if backend == "redis":
        overrides.update(redis_url=REDIS_URL, redis_key_prefix=redis_prefix())
    app = make_app(**overrides)
    clock = FakeClock()

    async def throttle(
        checker: RevocationChecker = Depends(get_revocation_checker),
    ) -> LoginThrottle:
        return LoginThrottle(app.state.settings, checker.redis, clock)

    app.dependency_overrides[get_login_throttle] = throttle
    return app, clock


async def attempt(app, email: str, password: str, address: str | None = None) -> httpx.Response:
    async with client_for(app, address) as client:
        return await client.post("/v1/auth/login", json={"email": email, "password": password})


async def failures_in_database(app, key: str) -> int:
    async with app.state.database.sessionmaker() as db:
        return int(
            (
                await db.execute(
                    select(func.count())
                    .select_from(LoginFailure)
                    .where(LoginFailure.throttle_key == key)
                )
            ).scalar_one()
        )


def assert_429(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["error_code"] == "FIRE-429"
    assert body["retryable"] is True
    retry_after = int(response.headers["retry-after"])
    assert body["detail"] == f"Too many failed logins; try again in {retry_after} seconds"
    return retry_after


def guess() -> str:
    return f"guess-{uuid.uuid4().hex[:10]}@x.example"


@pytest.mark.parametrize("backend", BACKENDS)
async def test_five_failures_from_one_address_block_that_address_only(
    make_app, make_tenant, redis_client, backend: str
):
    app, _clock = throttled_app(make_app, backend)
    tenant = await make_tenant()
    email = tenant.technician.email
    attacker = next_client_address()
    for _ in range(5):
        assert_401(await attempt(app, email, WRONG, attacker))
    blocked = await attempt(app, email, TEST_PASSWORD, attacker)  # even the right password
    assert assert_429(blocked) == 900  # the oldest failure leaves the 15-minute window
    # The owner, from their own address, is not affected; nor are other accounts.
    assert (await attempt(app, email, TEST_PASSWORD)).status_code == 200
    assert (await attempt(app, tenant.viewer.email, TEST_PASSWORD, attacker)).status_code == 200
    pair_key = throttle_keys(email, attacker).pair
    if backend == "database":
        assert await failures_in_database(app, pair_key) == 5
    else:
        assert await failures_in_database(app, pair_key) == 0
        key = app.state.revocation_checker.redis.key("login", pair_key)
        assert await redis_client.zcard(key) == 5
        assert 0 < await redis_client.pttl(key) <= 900_000


@pytest.mark.parametrize("backend", BACKENDS)
async def test_the_window_moving_on_lifts_the_block(make_app, make_tenant, backend: str):
    app, clock = throttled_app(make_app, backend)
    tenant = await make_tenant()
    address = next_client_address()
    for _ in range(5):
        assert_401(await attempt(app, tenant.viewer.email, WRONG, address))
        clock.advance(10)
    assert assert_429(await attempt(app, tenant.viewer.email, TEST_PASSWORD, address)) == 850
    clock.advance(850)
    assert (await attempt(app, tenant.viewer.email, TEST_PASSWORD, address)).status_code == 200


@pytest.mark.parametrize("backend", BACKENDS)
async def test_the_address_limit_is_its_own(make_app, make_tenant, backend: str):
    app, _clock = throttled_app(make_app, backend, login_max_failures_per_address=8)
    tenant = await make_tenant()
    address = next_client_address()
    for _ in range(8):  # eight unknown emails from one address
        assert_401(await attempt(app, guess(), WRONG, address))
    assert_429(await attempt(app, tenant.admin.email, TEST_PASSWORD, address))
    # The same account from another address gets through.
    assert (await attempt(app, tenant.admin.email, TEST_PASSWORD)).status_code == 200


@pytest.mark.parametrize("backend", BACKENDS)
async def test_an_office_behind_one_address_survives_a_few_typos(
    make_app, make_tenant, backend: str
):
    """Default settings: colleagues' typos from one NAT address lock nobody out."""
    app, _clock = throttled_app(make_app, backend)
    tenant = await make_tenant()
    address = next_client_address()
    for person in (tenant.admin, tenant.technician, tenant.viewer):
        for _ in range(2):
            assert_401(await attempt(app, person.email, WRONG, address))
    for _ in range(3):
        assert_401(await attempt(app, guess(), WRONG, address))
    for person in (tenant.admin, tenant.technician, tenant.viewer):
        assert (await attempt(app, person.email, TEST_PASSWORD, address)).status_code == 200


def test_the_defaults():
    settings = Settings()
    assert (settings.login_max_failures, settings.login_max_failures_per_address) == (5, 50)
    assert settings.login_email_free_failures == 10
    assert settings.login_email_max_delay_seconds == 10
    assert settings.login_known_address_days == 30


@pytest.mark.parametrize("backend", BACKENDS)
async def test_an_attack_from_many_addresses_slows_the_email_but_the_owner_logs_in(
    make_app, make_tenant, backend: str
):
    """The attack the policy exists for: one email, guessed from many addresses. Each
    guess comes from a fresh address, so no per-address limit ever bites; the email's
    count brings a progressive delay, capped, for unknown addresses; the owner's device,
    which logged in before, is spared; a new device of the owner waits seconds, not
    minutes."""
    app, clock = throttled_app(make_app, backend)
    tenant = await make_tenant()
    email = tenant.technician.email
    owners_device = next_client_address()
    assert (await attempt(app, email, TEST_PASSWORD, owners_device)).status_code == 200

    for _ in range(10):  # the free failures: answered at once
        assert_401(await attempt(app, email, WRONG))
    waits = []
    for _ in range(8):
        refused = await attempt(app, email, WRONG)
        wait = assert_429(refused)
        waits.append(wait)
        # The owner's known device is never made to wait, in the middle of the attack.
        assert (await attempt(app, email, TEST_PASSWORD, owners_device)).status_code == 200
        clock.advance(wait)
        assert_401(await attempt(app, email, WRONG))  # the next guess, once allowed
    assert waits == [1, 2, 4, 8, 10, 10, 10, 10]  # progressive, capped at 10 s
    # A new device of the owner (an address never used for this account) waits the
    # current delay at most, then logs in.
    new_device = next_client_address()
    wait = assert_429(await attempt(app, email, TEST_PASSWORD, new_device))
    assert wait <= 10
    clock.advance(wait)
    assert (await attempt(app, email, TEST_PASSWORD, new_device)).status_code == 200
    # Other accounts never noticed.
    assert (await attempt(app, tenant.viewer.email, TEST_PASSWORD)).status_code == 200


@pytest.mark.parametrize("backend", BACKENDS)
async def test_success_clears_the_addresses_failures_not_the_emails(
    make_app, make_tenant, backend: str
):
    app, _clock = throttled_app(make_app, backend)
    tenant = await make_tenant()
    email = tenant.technician.email
    address = next_client_address()
    for _round in range(2):
        for _ in range(4):
            assert_401(await attempt(app, email, WRONG, address))
        assert (await attempt(app, email, TEST_PASSWORD, address)).status_code == 200
    # Without the reset these would be failures 9 and 10 from this address.
    assert_401(await attempt(app, email, WRONG, address))
    # The email's count kept all nine: two more unknown addresses reach the delay.
    assert_401(await attempt(app, email, WRONG))
    assert_429(await attempt(app, email, WRONG))


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_parallel_burst_cannot_exceed_the_limit(make_app, make_tenant, backend: str):
    app, _clock = throttled_app(make_app, backend)
    tenant = await make_tenant()
    email = tenant.admin.email
    address = next_client_address()
    responses = await asyncio.gather(*(attempt(app, email, WRONG, address) for _ in range(15)))
    statuses = [response.status_code for response in responses]
    checked = statuses.count(401)
    assert checked + statuses.count(429) == 15
    # Every attempt reserves its failure before counting, so no more than five passwords
    # are ever tried. With Redis reserve-and-count is one atomic step: exactly five. In the
    # database, attempts that reserve at the same moment may all see each other and all be
    # refused, so it is at most five.
    if backend == "redis":
        assert checked == 5
    else:
        assert checked <= 5
        assert await failures_in_database(app, throttle_keys(email, address).pair) == checked


async def test_redis_down_counts_in_the_database(make_app, make_tenant):
    app = make_app(
        redis_url=f"redis://127.0.0.1:{closed_port()}/0", redis_key_prefix=redis_prefix()
    )
    tenant = await make_tenant()
    email = tenant.viewer.email
    address = next_client_address()
    for _ in range(5):
        assert_401(await attempt(app, email, WRONG, address))
    assert_429(await attempt(app, email, TEST_PASSWORD, address))
    assert await failures_in_database(app, throttle_keys(email, address).pair) == 5


def test_retry_after_arithmetic():
    now = datetime(2026, 12, 1, 12, 0, 0, tzinfo=utc_now().tzinfo)
    failures = [now - timedelta(seconds=s) for s in (100, 80, 60, 40, 20, 10)]
    # Six failures, limit five: the second oldest must leave the window.
    assert retry_after_seconds(failures, now=now, window_seconds=900, max_failures=5) == 820
    assert retry_after_seconds(failures[:4], now=now, window_seconds=900, max_failures=5) is None
    almost = [now - timedelta(seconds=899.5)] * 5
    assert retry_after_seconds(almost, now=now, window_seconds=900, max_failures=5) == 1
    latest = [now - timedelta(seconds=0.5)] * 12
    assert email_wait_seconds(latest, now=now, free=10, cap=10) == 4  # 4 s after the latest
    assert email_wait_seconds(latest[:9], now=now, free=10, cap=10) is None


@given(
    failures=st.integers(min_value=0, max_value=10_000),
    free=st.integers(min_value=1, max_value=100),
    cap=st.floats(min_value=1, max_value=300),
)
def test_the_email_delay_is_progressive_and_capped(failures: int, free: int, cap: float):
    delay = email_delay_seconds(failures, free=free, cap=cap)
    assert 0 <= delay <= cap
    assert (delay == 0) == (failures < free)
    assert email_delay_seconds(failures + 1, free=free, cap=cap) >= delay
