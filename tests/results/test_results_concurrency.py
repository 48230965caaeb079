"""Results sync under real concurrency: 2 server processes, 50 clients, one PostgreSQL.

The server runs as ``uvicorn --workers 2`` on the test database, so requests for one
session land on different processes and only the database (row lock, unique op
identity, idempotency claim) keeps them from losing or doubling an op. Clients send
overlapping batches (the same op in several requests), replay the same Idempotency-Key
both while the first request runs and after it finished, and resend ops under new
keys. Afterwards each session must hold exactly the engine's merge of every distinct op
sent, with one version per distinct op.
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import make_url

from bench._server import UvicornServer
from src.app.results import crdt
from src.app.results.hlc import HLCTimestamp

pytestmark = pytest.mark.postgres

CLIENTS = 50
SESSIONS = 3
OPS_PER_SESSION = 48
DEVICES = ("tablet-1", "tablet-2", "tablet-3", "phone-9")
# Parent and child paths of each other, so newer parents hide older children and
# newer children survive older parents; "~1"/"~0" exercise RFC 6901 escaping.
PATHS = (
    "/assets",
    "/assets/ext-1",
    "/assets/ext-1/pressure_kpa",
    "/assets/ext-1/note",
    "/assets/ext-2",
    "/assets/ext-2/pressure_kpa",
    "/assets/ext-2/seal/intact",
    "/summary",
    "/summary/status",
    "/a~1b/c~0d",
)
RACED_EVERY = 4  # every 4th client sends its first request twice at once, same key


def _value(rng: random.Random) -> Any:
    return rng.choice(
        [
            rng.randrange(0, 2000),
            f"note {rng.randrange(1000)}",
            {"pressure_kpa": rng.randrange(800, 1400), "status": "pass"},
            None,
            [1, 2, rng.randrange(10)],
            True,
        ]
    )


def _op_pool(rng: random.Random, session: int, base_ms: int) -> list[dict[str, Any]]:
    """Distinct ops with explicit ts/op_id/device_id. Wall times collide on purpose
    (only 40 distinct ms values, counters 0-2), so device and op_id break ties."""
    ops: list[dict[str, Any]] = []
    for index in range(OPS_PER_SESSION):
        ts = HLCTimestamp(base_ms + rng.randrange(40), rng.randrange(3))
        change: dict[str, Any] = {
            "op": "delete" if rng.random() < 0.2 else "set",
            "path": rng.choice(PATHS),
            "ts": str(ts),
            "op_id": f"s{session}-op{index:02d}-{uuid.uuid4().hex[:8]}",
        }
        if change["op"] == "set":
            change["value"] = _value(rng)
        change["_device"] = rng.choice(DEVICES)
        ops.append(change)
    return ops


def _body(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """The wire body. All ops of one request share the request's device_id, as they do
    for a real device; the pool assigns each op its device, so a batch is grouped by it."""
    device = batch[0]["_device"]
    return {
        "device_id": device,
        "changes": [{k: v for k, v in op.items() if k != "_device"} for op in batch],
    }


@dataclass
class Sent:
    """One HTTP exchange, kept for the checks at the end."""

    session: int
    key: str
    body: dict[str, Any]
    status: int
    replayed: bool
    payload: dict[str, Any]
    raw: bytes
    kind: str


@dataclass
class Ledger:
    sent: list[Sent] = field(default_factory=list)
    raced_409: int = 0
    raced_replays: int = 0


def _by_device(pool: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for op in pool:
        groups.setdefault(op["_device"], []).append(op)
    return groups


@pytest.fixture(scope="module")
def live_server(database_url: str) -> Iterator[UvicornServer]:
    # Must fail, never skip, when this run is not on PostgreSQL.
    assert make_url(database_url).get_backend_name() == "postgresql", (
        "this test needs FIREMODE_TEST_BACKEND=postgresql"
    )
    env = {
        "FIREMODE_DATABASE_URL": database_url,
        "FIREMODE_JWT_SECRET": os.environ["FIREMODE_JWT_SECRET"],
        "FIREMODE_ENV": "test",
    }
    with UvicornServer("src.app.main:app", workers=2, env=env) as server:
        assert len(server.worker_pids()) == 2, server.log_tail()
        yield server


@pytest.fixture
async def tenant_headers(make_tenant: Any) -> AsyncIterator[dict[str, str]]:
    tenant = await make_tenant()
    yield tenant.technician.headers


async def _post(
    http: httpx.AsyncClient,
    ledger: Ledger,
    headers: dict[str, str],
    session_id: uuid.UUID,
    session: int,
    key: str,
    body: dict[str, Any],
    kind: str,
) -> Sent:
    response = await http.post(
        f"/v1/tests/sessions/{session_id}/results",
        json=body,
        headers={**headers, "Idempotency-Key": key},
    )
    sent = Sent(
        session=session,
        key=key,
        body=body,
        status=response.status_code,
        replayed=response.headers.get("idempotent-replayed") == "true",
        payload=response.json(),
        raw=response.content,
        kind=kind,
    )
    ledger.sent.append(sent)
    return sent


async def _client(
    number: int,
    base_url: str,
    headers: dict[str, str],
    session_ids: list[uuid.UUID],
    pools: list[list[dict[str, Any]]],
    ledger: Ledger,
) -> None:
    rng = random.Random(1000 + number)
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as http:
        session = number % SESSIONS
        groups = list(_by_device(pools[session]).values())
        group = rng.choice(groups)
        batch = rng.sample(group, k=min(len(group), rng.randint(3, 8)))
        body = _body(batch)
        key = f"client-{number}-first-{uuid.uuid4()}"
        args = (http, ledger, headers, session_ids[session], session, key, body)

        if number % RACED_EVERY == 0:
            # The same key twice at once: one does the work, the other replays or is 409.
            first, second = await asyncio.gather(_post(*args, "raced"), _post(*args, "raced"))
            original = [s for s in (first, second) if s.status == 200 and not s.replayed]
            assert len(original) == 1, [(s.status, s.replayed, s.payload) for s in (first, second)]
            other = second if original[0] is first else first
            if other.status == 409:
                assert other.payload["retryable"] is True, other.payload
                assert other.payload["error_code"] == "FIRE-409", other.payload
                ledger.raced_409 += 1
                # Resent once the original has finished: now it is a replay.
                other = await _post(*args, "raced-resend")
            assert other.status == 200, other.payload
            assert other.replayed, other.payload
            assert other.raw == original[0].raw
            ledger.raced_replays += 1
            first_result = original[0]
        else:
            first_result = await _post(*args, "first")
            assert first_result.status == 200, first_result.payload
            assert not first_result.replayed

        # The same ops under a new key: all already in the log, so all duplicates.
        again = await _post(
            http,
            ledger,
            headers,
            session_ids[session],
            session,
            f"client-{number}-again-{uuid.uuid4()}",
            {**body, "changes": list(reversed(body["changes"]))},
            "same-ops-new-key",
        )
        assert again.status == 200, again.payload
        assert not again.replayed
        assert (again.payload["applied"], again.payload["duplicates"]) == (0, len(batch))

        # The first key again, after it completed: a byte-identical replay.
        replay = await _post(*args, "replay")
        assert replay.status == 200, replay.payload
        assert replay.replayed
        assert replay.raw == first_result.raw

        # One more batch on another session, overlapping whatever the others send.
        other_session = (session + 1 + number % 2) % SESSIONS
        group = rng.choice(list(_by_device(pools[other_session]).values()))
        batch = rng.sample(group, k=min(len(group), rng.randint(2, 6)))
        last = await _post(
            http,
            ledger,
            headers,
            session_ids[other_session],
            other_session,
            f"client-{number}-last-{uuid.uuid4()}",
            _body(batch),
            "other-session",
        )
        assert last.status == 200, last.payload


def _engine_op(change: dict[str, Any], device_id: str) -> crdt.Op:
    return crdt.Op.create(
        change["op"],
        change["path"],
        ts=change["ts"],
        device_id=device_id,
        op_id=change["op_id"],
        value=change.get("value", crdt.MISSING),
    )


async def test_fifty_clients_on_two_workers_converge_to_the_engine_merge(
    live_server: UvicornServer, tenant_headers: dict[str, str]
) -> None:
    rng = random.Random(5)
    base_ms = int((datetime.now(UTC) - timedelta(minutes=10)).timestamp() * 1000)
    session_ids = [uuid.uuid4() for _ in range(SESSIONS)]
    pools = [_op_pool(rng, session, base_ms) for session in range(SESSIONS)]
    ledger = Ledger()

    # The sessions do not exist yet: the first writes race to create them as drafts.
    results = await asyncio.gather(
        *(
            _client(n, live_server.base_url, tenant_headers, session_ids, pools, ledger)
            for n in range(CLIENTS)
        ),
        return_exceptions=True,
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, f"{failures[0]!r}\nserver log:\n{live_server.log_tail()}"

    # Only the racing same-key requests may have seen anything but 200.
    unexpected = [(s.kind, s.status, s.payload) for s in ledger.sent if s.status != 200]
    assert all(kind == "raced" and status == 409 for kind, status, _ in unexpected), unexpected
    assert len(unexpected) == ledger.raced_409
    assert ledger.raced_replays == len(range(0, CLIENTS, RACED_EVERY))
    print(
        f"same-key races: {ledger.raced_replays}, of which {ledger.raced_409} answered 409"
        " and succeeded as a replay when resent"
    )

    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=30.0) as http:
        for session, session_id in enumerate(session_ids):
            exchanges = [s for s in ledger.sent if s.session == session and s.status == 200]
            distinct: dict[str, crdt.Op] = {}
            for exchange in exchanges:
                for change in exchange.body["changes"]:
                    distinct[change["op_id"]] = _engine_op(change, exchange.body["device_id"])
            expected = crdt.merge(distinct.values())

            # Each distinct op was applied by exactly one original (non-replayed) request.
            originals = [s for s in exchanges if not s.replayed]
            assert sum(s.payload["applied"] for s in originals) == len(distinct)
            for s in originals:
                assert s.payload["applied"] + s.payload["duplicates"] == len(s.body["changes"])
                assert s.payload["session_id"] == str(session_id)

            response = await http.get(
                f"/v1/tests/sessions/{session_id}/results", headers=tenant_headers
            )
            assert response.status_code == 200, response.text
            state = response.json()
            assert state["version"] == len(distinct)

            # The op log holds each distinct op once, versions 1..N without gaps.
            delta = await http.get(
                f"/v1/tests/sessions/{session_id}/results",
                params={"since": 0},
                headers=tenant_headers,
            )
            assert delta.status_code == 200, delta.text
            logged = delta.json()["ops"]
            assert [op["version"] for op in logged] == list(range(1, len(distinct) + 1))
            assert sorted(op["op_id"] for op in logged) == sorted(distinct)
            for op in logged:
                sent_op = distinct[op["op_id"]]
                assert (op["op"], op["path"], op["ts"], op["device_id"]) == (
                    sent_op.op,
                    sent_op.path,
                    sent_op.ts,
                    sent_op.device_id,
                )
                if op["op"] == "set":
                    assert op["value"] == sent_op.value

            # The log holds exactly the ops sent, so a wrong document is a mis-merged cache.
            assert state["document"] == expected, (
                f"session {session}: the materialised document is not the merge of its op log"
            )
        assert live_server.process is not None and live_server.process.poll() is None
