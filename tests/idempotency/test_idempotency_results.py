"""Idempotency-Key on POST .../results (docs/api/idempotency.md), through HTTP."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from src.app.core.clock import utc_now
from src.app.core.idempotency_model import IdempotencyRecord
from src.app.maintenance import purge_expired

CHANGES = [
    {"op": "set", "path": "/assets/ext-12/pressure_kpa", "value": 1210},
    {"op": "delete", "path": "/assets/ext-12/note"},
]


def url(session_id: uuid.UUID) -> str:
    return f"/v1/tests/sessions/{session_id}/results"


async def post(
    client: httpx.AsyncClient,
    user: Any,
    session_id: uuid.UUID,
    key: str,
    changes: list[dict[str, Any]] | None = None,
) -> httpx.Response:
    return await client.post(
        url(session_id),
        json={"device_id": "tablet-7", "changes": changes or CHANGES},
        headers={**user.headers, "Idempotency-Key": key},
    )


async def version_of(client: httpx.AsyncClient, user: Any, session_id: uuid.UUID) -> int:
    response = await client.get(url(session_id), headers=user.headers)
    assert response.status_code == 200
    version: int = response.json()["version"]
    return version


async def test_replay_is_byte_identical_and_does_no_work(
    client: httpx.AsyncClient, make_tenant: Any
) -> None:
    tenant = await make_tenant()
    tech = tenant.technician
    session_id, key = uuid.uuid4(), str(uuid.uuid4())
    first = await post(client, tech, session_id, key)
    assert first.status_code == 200
    assert "idempotent-replayed" not in first.headers
    assert first.json()["version"] == 2

    for _ in range(3):
        again = await post(client, tech, session_id, key)
        assert again.status_code == 200
        assert again.headers["idempotent-replayed"] == "true"
        assert again.headers["content-type"] == first.headers["content-type"]
        assert again.content == first.content
        assert again.headers["x-transaction-id"] != first.headers["x-transaction-id"]
    assert await version_of(client, tech, session_id) == 2


async def test_canonical_body_and_quoted_key_replay(
    client: httpx.AsyncClient, make_tenant: Any
) -> None:
    tenant = await make_tenant()
    tech = tenant.technician
    session_id = uuid.uuid4()
    first = await post(client, tech, session_id, "order-42")
    # Same request: other key order, other whitespace, and the key as an sf-string.
    body = {"changes": [dict(reversed(list(c.items()))) for c in CHANGES], "device_id": "tablet-7"}
    again = await client.post(
        url(session_id),
        content=json.dumps(body, indent=3).encode(),
        headers={
            **tech.headers,
            "Idempotency-Key": '"order-42"',
            "Content-Type": "application/json",
        },
    )
    assert (again.status_code, again.headers["idempotent-replayed"]) == (200, "true")
    assert again.content == first.content
    assert await version_of(client, tech, session_id) == 2


async def test_same_key_with_another_body_is_422(
    client: httpx.AsyncClient, make_tenant: Any
) -> None:
    tenant = await make_tenant()
    tech = tenant.technician
    session_id, key = uuid.uuid4(), "reused-key"
    first = await post(client, tech, session_id, key)
    changed = await post(
        client, tech, session_id, key, [{"op": "set", "path": "/other", "value": 2}]
    )
    assert changed.status_code == 422
    assert (changed.json()["error_code"], changed.json()["retryable"]) == ("FIRE-422", False)
    assert "idempotent-replayed" not in changed.headers
    assert await version_of(client, tech, session_id) == 2
    # The key still replays its own request.
    again = await post(client, tech, session_id, key)
    assert again.content == first.content


async def test_key_is_scoped_to_user_and_path(client: httpx.AsyncClient, make_tenant: Any) -> None:
    tenant, other_org = await make_tenant(), await make_tenant()
    session_id, key = uuid.uuid4(), "shared-key"
    first = await post(client, tenant.technician, session_id, key)
    assert first.json()["version"] == 2

    # Another user of the same organisation, same key, same path: their own request.
    by_admin = await post(client, tenant.admin, session_id, key)
    assert by_admin.status_code == 200
    assert "idempotent-replayed" not in by_admin.headers
    assert by_admin.json()["duplicates"] == 0
    assert by_admin.json()["version"] == 4  # its ops were stamped anew: 2 more
    # Another organisation cannot read the response through the key either: 404.
    foreign = await post(client, other_org.technician, session_id, key)
    assert foreign.status_code == 404
    # Same user, same key, another path: another key.
    elsewhere = uuid.uuid4()
    other_path = await post(client, tenant.technician, elsewhere, key)
    assert (other_path.status_code, other_path.json()["session_id"]) == (200, str(elsewhere))
    assert "idempotent-replayed" not in other_path.headers


async def test_two_concurrent_requests_with_one_key_do_the_work_once(
    client: httpx.AsyncClient, make_tenant: Any
) -> None:
    tenant = await make_tenant()
    tech = tenant.technician
    for _round in range(3):
        session_id, key = uuid.uuid4(), str(uuid.uuid4())
        responses = await asyncio.gather(*(post(client, tech, session_id, key) for _ in range(2)))
        worked = [
            r for r in responses if r.status_code == 200 and "idempotent-replayed" not in r.headers
        ]
        assert len(worked) == 1
        [other] = [r for r in responses if r is not worked[0]]
        if other.status_code == 409:
            assert other.json()["retryable"] is True
            assert other.headers["retry-after"] == "1"
        else:
            assert (other.status_code, other.headers["idempotent-replayed"]) == (200, "true")
            assert other.content == worked[0].content
        assert worked[0].json()["applied"] == 2
        assert await version_of(client, tech, session_id) == 2


async def test_a_refused_request_stores_nothing_so_the_fixed_retry_runs(
    client: httpx.AsyncClient, make_tenant: Any
) -> None:
    tenant = await make_tenant()
    tech = tenant.technician
    session_id, key = uuid.uuid4(), "fix-and-retry"
    bad = [{"op": "set", "path": "/a", "value": 1, "ts": "2999-01-01T00:00:00.000Z/0000"}]
    assert (await post(client, tech, session_id, key, bad)).status_code == 422
    # Not a stored 422 and not "another body for this key": the work runs.
    fixed = await post(client, tech, session_id, key, [{"op": "set", "path": "/a", "value": 1}])
    assert fixed.status_code == 200
    assert "idempotent-replayed" not in fixed.headers
    assert fixed.json()["version"] == 1
    again = await post(client, tech, session_id, key, [{"op": "set", "path": "/a", "value": 1}])
    assert again.headers["idempotent-replayed"] == "true"


async def test_an_expired_record_no_longer_counts(
    client: httpx.AsyncClient, app: FastAPI, make_tenant: Any
) -> None:
    tenant = await make_tenant()
    tech = tenant.technician
    session_id, key = uuid.uuid4(), "old-key"
    assert (await post(client, tech, session_id, key)).status_code == 200
    async with app.state.database.sessionmaker() as db:
        await db.execute(
            update(IdempotencyRecord)
            .where(
                IdempotencyRecord.user_id == tech.id,
                IdempotencyRecord.idempotency_key == key,
            )
            .values(expires_at=utc_now() - timedelta(seconds=1))
        )
        await db.commit()
    response = await post(
        client, tech, session_id, key, [{"op": "set", "path": "/new", "value": 1}]
    )
    assert response.status_code == 200
    assert "idempotent-replayed" not in response.headers
    assert response.json()["version"] == 3


async def test_stored_records_expire_after_the_configured_ttl(
    client: httpx.AsyncClient, app: FastAPI, make_tenant: Any
) -> None:
    tenant = await make_tenant()
    tech = tenant.technician
    before = utc_now()
    assert (await post(client, tech, uuid.uuid4(), "ttl-key")).status_code == 200
    async with app.state.database.sessionmaker() as db:
        record = await db.scalar(
            select(IdempotencyRecord).where(IdempotencyRecord.user_id == tech.id)
        )
    assert record is not None
    assert record.state == "completed"
    ttl = timedelta(seconds=app.state.settings.idempotency_ttl_seconds)
    assert ttl == timedelta(hours=24)
    assert before + ttl <= record.expires_at <= utc_now() + ttl


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b'""',
        b"k" * 256,
        '"{}"'.format("k" * 256).encode(),
        "ключ".encode(),
        b"tab\tinside",
        b'"unterminated',
        b'"bad \\n escape"',
        b'"trailing" junk',
    ],
    ids=[
        "empty",
        "empty-quoted",
        "256",
        "256-quoted",
        "non-ascii",
        "control",
        "open-quote",
        "bad-escape",
        "after-quote",
    ],
)
async def test_malformed_keys_are_400(
    client: httpx.AsyncClient, make_tenant: Any, raw: bytes
) -> None:
    tenant = await make_tenant()
    session_id = uuid.uuid4()
    response = await client.post(
        url(session_id),
        json={"changes": CHANGES},
        headers=[*tenant.technician.headers.items(), ("Idempotency-Key", raw)],
    )
    assert response.status_code == 400, response.text
    assert response.json()["error_code"] == "FIRE-400"
    assert (await client.get(url(session_id), headers=tenant.technician.headers)).status_code == 404


async def test_two_key_headers_are_400_and_255_characters_are_fine(
    client: httpx.AsyncClient, make_tenant: Any
) -> None:
    tenant = await make_tenant()
    headers = list(tenant.technician.headers.items())
    twice = await client.post(
        url(uuid.uuid4()),
        json={"changes": CHANGES},
        headers=[*headers, ("Idempotency-Key", "a"), ("Idempotency-Key", "b")],
    )
    assert twice.status_code == 400
    longest = await client.post(
        url(uuid.uuid4()),
        json={"changes": CHANGES},
        headers=[*headers, ("Idempotency-Key", "~" * 255)],
    )
    assert longest.status_code == 200


async def test_maintenance_purge_deletes_only_expired_records(
    client: httpx.AsyncClient, app: FastAPI, make_tenant: Any
) -> None:
    tenant = await make_tenant()
    tech = tenant.technician
    session_id = uuid.uuid4()
    kept = await post(client, tech, session_id, "purge-kept")
    await post(client, tech, session_id, "purge-expired", [{"op": "set", "path": "/p", "value": 1}])
    async with app.state.database.sessionmaker() as db:
        await db.execute(
            update(IdempotencyRecord)
            .where(
                IdempotencyRecord.user_id == tech.id,
                IdempotencyRecord.idempotency_key == "purge-expired",
            )
            .values(expires_at=utc_now() - timedelta(minutes=1))
        )
        await db.commit()
        counts = await purge_expired(db, app.state.settings, utc_now())
    assert counts["idempotency_records"] >= 1
    async with app.state.database.sessionmaker() as db:
        keys = set(
            await db.scalars(
                select(IdempotencyRecord.idempotency_key).where(
                    IdempotencyRecord.user_id == tech.id
                )
            )
        )
    assert keys == {"purge-kept"}
    assert (await post(client, tech, session_id, "purge-kept")).content == kept.content


async def test_a_large_response_is_stored_without_a_second_full_copy(
    client: httpx.AsyncClient, app: FastAPI, make_tenant: Any
) -> None:
    tenant = await make_tenant()
    tech = tenant.technician
    session_id, key = uuid.uuid4(), "large-answer"
    changes = [{"op": "set", "path": f"/photos/p{i}", "value": "x" * 1000} for i in range(20)]
    first = await post(client, tech, session_id, key, changes)
    assert first.status_code == 200
    assert len(first.content) > 20_000
    again = await post(client, tech, session_id, key, changes)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content

    async with app.state.database.sessionmaker() as db:
        record = await db.scalar(
            select(IdempotencyRecord).where(
                IdempotencyRecord.user_id == tech.id, IdempotencyRecord.idempotency_key == key
            )
        )
    assert record is not None and record.response_body is not None
    # Compressed (the generic path) or by reference to the version it answered (the
    # one-statement path on PostgreSQL): either way far smaller than the answer.
    assert len(record.response_body) < len(first.content) // 10
    if record.response_document_version is not None:
        assert record.response_document_version == 20
    else:
        assert record.response_encoding == "zlib"
