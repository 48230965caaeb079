"""The idempotency mechanism itself, on a probe route of a fresh app: a crash mid-work
stores nothing, a request in flight is 409 (PostgreSQL) or waited for (SQLite), stored
headers replay, and error responses are never stored."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from src.app.core.idempotency import parse_idempotency_key, request_fingerprint
from tests.conftest import TEST_BACKEND
from tests.idempotency.conftest import Probe


async def send(
    probe: Probe, user: Any, key: str | None, name: str, mode: str = "ok", path: str = "things"
) -> httpx.Response:
    headers = dict(user.headers)
    if key is not None:
        headers["Idempotency-Key"] = key
    return await probe.client.post(
        f"/v1/probe/{path}", json={"name": name, "mode": mode}, headers=headers
    )


async def test_a_crash_mid_work_stores_nothing_and_the_retry_runs(
    probe: Probe, make_tenant: Any
) -> None:
    tenant = await make_tenant()
    name, key = f"crash-{uuid.uuid4()}", str(uuid.uuid4())
    probe.state.explode_next = True

    crashed = await send(probe, tenant.technician, key, name)
    assert crashed.status_code == 500
    assert (crashed.json()["error_code"], crashed.json()["retryable"]) == ("FIRE-500", True)
    assert await probe.count(name) == 0  # the work rolled back with the claim

    retried = await send(probe, tenant.technician, key, name)
    assert retried.status_code == 201
    assert "idempotent-replayed" not in retried.headers
    assert retried.json()["call"] == 2

    replayed = await send(probe, tenant.technician, key, name)
    assert (replayed.status_code, replayed.headers["idempotent-replayed"]) == (201, "true")
    assert replayed.content == retried.content
    assert replayed.headers["location"] == retried.headers["location"]
    assert probe.state.calls == 2
    assert await probe.count(name) == 1


async def test_a_request_in_flight_is_not_run_twice(probe: Probe, make_tenant: Any) -> None:
    tenant = await make_tenant()
    name, key = f"slow-{uuid.uuid4()}", str(uuid.uuid4())
    first = asyncio.create_task(send(probe, tenant.technician, key, name, "wait"))
    await asyncio.wait_for(probe.state.entered.wait(), timeout=10)

    if TEST_BACKEND == "postgresql":
        # The first request's claim is held (uncommitted) by another connection.
        busy = await send(probe, tenant.technician, key, name, "wait")
        assert busy.status_code == 409
        assert busy.headers["retry-after"] == "1"
        assert (busy.json()["error_code"], busy.json()["retryable"]) == ("FIRE-409", True)
        probe.state.gate.set()
        done = await first
        later = await send(probe, tenant.technician, key, name, "wait")
    else:
        # SQLite serialises writers: the second waits for the first, then replays it
        # (the work ran once and the second answer is the stored one, asserted below).
        second = asyncio.create_task(send(probe, tenant.technician, key, name, "wait"))
        probe.state.gate.set()
        done = await first
        later = await second
    assert (done.status_code, later.status_code) == (201, 201)
    assert later.headers["idempotent-replayed"] == "true"
    assert later.content == done.content
    assert probe.state.calls == 1
    assert await probe.count(name) == 1


async def test_error_responses_are_not_stored(probe: Probe, make_tenant: Any) -> None:
    tenant = await make_tenant()
    name, key = f"refused-{uuid.uuid4()}", str(uuid.uuid4())
    for _ in range(2):
        refused = await send(probe, tenant.technician, key, name, "refuse")
        assert refused.status_code == 409
        assert "idempotent-replayed" not in refused.headers
    assert probe.state.calls == 2
    assert await probe.count(name) == 0  # what the work wrote before refusing rolled back
    # The key is still free for a (different) request that succeeds.
    accepted = await send(probe, tenant.technician, key, name, "ok")
    assert (accepted.status_code, accepted.json()["call"]) == (201, 3)


async def test_the_key_is_optional_where_the_route_says_so(probe: Probe, make_tenant: Any) -> None:
    tenant = await make_tenant()
    name = f"optional-{uuid.uuid4()}"
    for _ in range(2):
        response = await send(probe, tenant.technician, None, name, path="optional")
        assert response.status_code == 201
    assert await probe.count(name) == 2
    key = str(uuid.uuid4())
    first = await send(probe, tenant.technician, key, name, path="optional")
    again = await send(probe, tenant.technician, key, name, path="optional")
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert await probe.count(name) == 3
    # A key used on one route is another key on another path.
    required = await send(probe, tenant.technician, key, name, path="things")
    assert "idempotent-replayed" not in required.headers
    missing = await send(probe, tenant.technician, None, name, path="things")
    assert missing.status_code == 400


def test_key_syntax() -> None:
    assert parse_idempotency_key("abc") == "abc"
    assert parse_idempotency_key('"abc"') == "abc"
    assert parse_idempotency_key(r'"a\"b\\c"') == 'a"b\\c'
    assert parse_idempotency_key("  spaced key  ") == "spaced key"
    assert parse_idempotency_key("~" * 255) == "~" * 255
    every_printable = "".join(chr(c) for c in range(0x21, 0x7F)) + " end"
    assert parse_idempotency_key(every_printable) == every_printable


@pytest.mark.parametrize(
    "bad", ["", '""', "k" * 256, "é", '"open', r'"\x"', '"a"b', "a\tb", "a\x7fb", "a\x00"]
)
def test_bad_key_syntax(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_idempotency_key(bad)


def test_fingerprint_is_canonical() -> None:
    a = request_fingerprint(b'{"b": [1, {"y": 2, "x": 1}], "a": "\\u00e9"}')
    b = request_fingerprint('{"a":"é","b":[1,{"x":1,"y":2}]}'.encode())
    assert a == b
    assert a != request_fingerprint(b'{"a": "e", "b": [1, {"x": 1, "y": 2}]}')
    assert a != request_fingerprint(b'{"b": [{"x": 1, "y": 2}, 1], "a": "\\u00e9"}')
    assert request_fingerprint(b"{}") != request_fingerprint(b"{}", "dry_run=1")
    assert request_fingerprint(b"not json") != request_fingerprint(b"not json!")
