"""Results storage: minimal responses, replays by reference, bounds, rebuild, round trips."""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from src.app.core.settings import Settings
from src.app.main import create_app
from src.app.results.cli import rebuild_sessions
from src.app.results.documents import current_document
from src.app.results.models import ResultHead, ResultPath
from tests.results.conftest import ResultsApi, del_op, hlc, set_op

URL = "/v1/tests/sessions/{}/results"


async def _post(
    client: httpx.AsyncClient,
    user: Any,
    session_id: uuid.UUID,
    changes: list[dict[str, Any]],
    *,
    key: str | None = None,
    prefer: str | None = None,
) -> httpx.Response:
    headers = {**user.headers, "Idempotency-Key": key or str(uuid.uuid4())}
    if prefer is not None:
        headers["Prefer"] = prefer
    return await client.post(
        URL.format(session_id), json={"device_id": "tab", "changes": changes}, headers=headers
    )


async def test_return_minimal_omits_the_document_and_replays_identically(
    client: httpx.AsyncClient, make_tenant: Any
) -> None:
    tech = (await make_tenant()).technician
    session_id = uuid.uuid4()
    first = await _post(
        client, tech, session_id, [set_op("/a", 1, hlc(1))], key="m-1", prefer="return=minimal"
    )
    assert first.status_code == 200
    assert first.headers["preference-applied"] == "return=minimal"
    body = first.json()
    assert "document" not in body
    assert (body["version"], body["applied"], body["duplicates"]) == (1, 1, 0)

    again = await _post(
        client, tech, session_id, [set_op("/a", 1, hlc(1))], key="m-1", prefer="return=minimal"
    )
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["preference-applied"] == "return=minimal"
    assert again.content == first.content

    # Several preferences, other case: still honoured. Without it: the document is back.
    other = await _post(
        client,
        tech,
        session_id,
        [set_op("/b", 2, hlc(2))],
        prefer='respond-async, RETURN="minimal"',
    )
    assert "document" not in other.json()
    full = await _post(client, tech, session_id, [set_op("/c", 3, hlc(3))])
    assert "preference-applied" not in full.headers
    assert full.json()["document"] == {"a": 1, "b": 2, "c": 3}


async def test_a_replay_after_later_writes_answers_the_document_it_answered(
    client: httpx.AsyncClient, make_tenant: Any
) -> None:
    tech = (await make_tenant()).technician
    session_id = uuid.uuid4()
    first = await _post(client, tech, session_id, [set_op("/a", {"x": 1}, hlc(1))], key="r-1")
    assert first.status_code == 200
    later = [set_op("/a/y", 2, hlc(5)), del_op("/a/x", hlc(6)), set_op("/z", "é", hlc(0))]
    assert (await _post(client, tech, session_id, later)).json()["version"] == 4

    replayed = await _post(client, tech, session_id, [set_op("/a", {"x": 1}, hlc(1))], key="r-1")
    assert replayed.headers["idempotent-replayed"] == "true"
    assert replayed.content == first.content
    assert replayed.json()["document"] == {"a": {"x": 1}}


@pytest.fixture
async def capped() -> AsyncIterator[httpx.AsyncClient]:
    limited = create_app(Settings(max_session_bytes=1024))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=limited), base_url="http://test"
    ) as http:
        yield http
    await limited.state.database.dispose()


async def test_the_session_byte_cap_refuses_the_batch_whole(
    capped: httpx.AsyncClient, make_tenant: Any
) -> None:
    tech = (await make_tenant()).technician
    session_id = uuid.uuid4()
    blob = "x" * 400  # 402 bytes of JSON, plus 2 of path
    assert (await _post(capped, tech, session_id, [set_op("/a", blob, hlc(1))])).status_code == 200
    # Replacing a value still adds to the log, which is append-only: 3 x 404 + 3 > 1024.
    assert (await _post(capped, tech, session_id, [set_op("/a", blob, hlc(2))])).status_code == 200
    refused = await _post(capped, tech, session_id, [set_op("/b", blob, hlc(3)), set_op("/c", 1)])
    assert refused.status_code == 422
    assert refused.json()["detail"] == (
        "The session's results log would hold 1215 bytes of paths and values, over the limit "
        "of 1024 bytes (FIREMODE_MAX_SESSION_BYTES)"
    )
    assert refused.json()["errors"] == [
        {"pointer": "/changes", "detail": "the session's results log is full"}
    ]
    state = await capped.get(URL.format(session_id), headers=tech.headers)
    assert (state.json()["version"], state.json()["document"]) == (2, {"a": blob})
    # A new session refused for size is not created either.
    fresh = uuid.uuid4()
    too_big = [set_op(f"/{i}", blob) for i in range(3)]
    assert (await _post(capped, tech, fresh, too_big)).status_code == 422
    assert (await capped.get(URL.format(fresh), headers=tech.headers)).status_code == 404


async def _stored(app: FastAPI, session_id: uuid.UUID) -> tuple[Any, list[Any]]:
    async with app.state.database.sessionmaker() as db:
        head = (
            await db.execute(
                select(
                    ResultHead.version,
                    ResultHead.last_ts,
                    ResultHead.state_bytes,
                    ResultHead.log_bytes,
                ).where(ResultHead.session_id == session_id)
            )
        ).one()
        paths = (
            await db.execute(
                select(
                    ResultPath.path,
                    ResultPath.set_key,
                    ResultPath.set_value,
                    ResultPath.set_bytes,
                    ResultPath.del_key,
                )
                .where(ResultPath.session_id == session_id)
                .order_by(ResultPath.path)
            )
        ).all()
    return tuple(head), [tuple(p) for p in paths]


async def test_rebuild_from_the_log_gives_the_same_state(
    app: FastAPI, results_api: ResultsApi, make_tenant: Any
) -> None:
    tenant = await make_tenant()
    tech = tenant.technician
    session_id = uuid.uuid4()
    batches = [
        [set_op("/a", 5, hlc(1)), set_op("/a/b", 1, hlc(2)), del_op("/a/b", hlc(3))],
        [set_op("/x", [1, {"y": None}], hlc(10)), del_op("/x", hlc(9)), set_op("/n", None)],
        [set_op("/a", {"k": "é"}, hlc(0)), del_op("/gone", hlc(4)), set_op("/x/z", 2, hlc(8))],
    ]
    for batch in batches:
        assert (await results_api.post(tech, session_id, batch)).status_code == 200
    before = await _stored(app, session_id)
    version, document = await results_api.state(tech, session_id)

    assert await rebuild_sessions(app.state.database, [session_id]) == {str(session_id): 9}

    assert await _stored(app, session_id) == before
    async with app.state.database.sessionmaker() as db:
        assert await current_document(db, tenant.organisation_id, session_id) == (
            version,
            document,
        )
        # Another organisation's session, or none at all: nothing to read.
        assert await current_document(db, uuid.uuid4(), session_id) == (0, {})
        assert await current_document(db, tenant.organisation_id, uuid.uuid4()) == (0, {})
    assert document == {"a": {}, "x": [1, {"y": None}], "n": None}


# --------------------------------------------------------------------- round trips


class RoundTrips:
    """Counts messages exchanges with PostgreSQL at the driver: prepares, executions of
    prepared statements, and simple queries (BEGIN, COMMIT, ROLLBACK)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[RoundTrips]:
    counter = RoundTrips()

    def wrap(owner: Any, name: str) -> None:
        original = getattr(owner, name)

        async def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
            label = args[0].split()[0] if name == "execute" and args else name
            counter.counts[label] += 1
            return await original(self, *args, **kwargs)

        monkeypatch.setattr(owner, name, counted)

    wrap(asyncpg.connection.Connection, "prepare")
    wrap(asyncpg.connection.Connection, "execute")
    # The results write path sends its one statement through the driver connection.
    for name in ("fetch", "fetchrow", "fetchval"):
        wrap(asyncpg.connection.Connection, name)
    wrap(asyncpg.prepared_stmt.PreparedStatement, "fetch")
    wrap(asyncpg.prepared_stmt.PreparedStatement, "executemany")
    yield counter


@pytest.fixture
async def with_redis() -> AsyncIterator[httpx.AsyncClient]:
    """An app whose revocation checks are answered by Redis, as in production."""
    redis_url = os.environ.get("FIREMODE_TEST_REDIS_URL") or "redis://127.0.0.1:6379/15"
    prefix = f"firemode-test:{uuid.uuid4().hex[:12]}:"
    served = create_app(Settings(redis_url=redis_url, redis_key_prefix=prefix))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=served), base_url="http://test"
    ) as http:
        yield http
    await served.state.database.dispose()


@pytest.mark.postgres
async def test_a_write_is_one_round_trip_on_postgresql(
    with_redis: httpx.AsyncClient, make_tenant: Any, round_trips: RoundTrips
) -> None:
    client = with_redis
    tech = (await make_tenant()).technician
    sessions = [uuid.uuid4() for _ in range(3)]
    for i, session_id in enumerate(sessions):  # warm up: statements prepared once
        for prefer in (None, "return=minimal"):
            response = await _post(client, tech, session_id, [set_op(f"/w{i}", i)], prefer=prefer)
            assert response.status_code == 200

    for prefer in (None, "return=minimal"):
        for session_id in (sessions[0], uuid.uuid4()):  # an existing session, a new one
            round_trips.counts.clear()
            changes = [set_op("/a", 1, hlc(1)), del_op("/b"), set_op("/c/d", {"e": [1]})]
            response = await _post(client, tech, session_id, changes, prefer=prefer)
            assert response.status_code == 200, response.text
            # The revocation check, the claim, the lock, de-duplication, log append,
            # state fold, version bump and the stored response: one statement,
            # autocommitted (no BEGIN/COMMIT), and nothing asked of Redis.
            assert round_trips.counts == Counter({"fetchrow": 1}), round_trips.counts

    round_trips.counts.clear()
    replayed = await _post(client, tech, sessions[1], [set_op("/w1", 1)], key="rt-key")
    again = await _post(client, tech, sessions[1], [set_op("/w1", 1)], key="rt-key")
    assert (replayed.status_code, again.headers["idempotent-replayed"]) == (200, "true")
    assert round_trips.total <= 4, round_trips.counts  # the replay re-reads the document
