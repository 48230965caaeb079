"""The submit route's lean handler serves what passes every check, and gives way to the
declared FastAPI path for everything else: both answer every request identically."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from src.app.core.clock import utc_now
from src.app.identity.models import User
from src.app.identity.revocation import ALL_REVOKED
from src.app.results import router as results_router
from tests.results.conftest import hlc, set_op

URL = "/v1/tests/sessions/{}/results"
PER_REQUEST = {"transaction_id", "instance"}  # problem members naming the request itself


class LeanSpy:
    """Counts the requests the lean handler served, and can switch it off."""

    def __init__(self) -> None:
        self.served = 0
        self.enabled = True


@pytest.fixture
def lean(monkeypatch: pytest.MonkeyPatch) -> Iterator[LeanSpy]:
    spy = LeanSpy()
    original = results_router._lean_submit

    async def spied(request: Any) -> Any:
        if not spy.enabled:
            return None
        response = await original(request)
        spy.served += response is not None
        return response

    monkeypatch.setattr(results_router, "_lean_submit", spied)
    yield spy


async def _send(
    client: httpx.AsyncClient,
    session: str,
    *,
    headers: dict[str, str],
    body: Any,
) -> httpx.Response:
    return await client.post(URL.format(session), json=body, headers=headers)


async def test_a_valid_write_is_served_by_the_lean_handler(
    client: httpx.AsyncClient, make_tenant: Any, lean: LeanSpy
) -> None:
    tech = (await make_tenant()).technician
    session_id = uuid.uuid4()
    body = {"device_id": "tab", "changes": [set_op("/a/b", 1, hlc(1))]}
    headers = {**tech.headers, "Idempotency-Key": "lean-1"}
    first = await _send(client, str(session_id), headers=headers, body=body)
    assert (first.status_code, lean.served) == (200, 1)
    assert first.json()["document"] == {"a": {"b": 1}}
    replayed = await _send(client, str(session_id), headers=headers, body=body)
    assert (replayed.headers["idempotent-replayed"], lean.served) == ("true", 2)
    assert replayed.content == first.content

    # The same kind of write through the declared path: the same answer, byte for byte
    # but for the version and the server's clock reading.
    lean.enabled = False
    body = {"device_id": "tab", "changes": [set_op("/a/c", 2, hlc(2))]}
    declared = await _send(
        client, str(session_id), headers={**tech.headers, "Idempotency-Key": "lean-2"}, body=body
    )
    assert declared.status_code == 200
    out = declared.json()
    assert (out["version"], out["applied"], out["document"]) == (2, 1, {"a": {"b": 1, "c": 2}})
    assert list(out) == list(first.json())
    assert declared.headers["content-type"] == first.headers["content-type"]


def _refusals(tenant: Any, session_id: uuid.UUID) -> list[tuple[str, dict[str, str], Any]]:
    tech, viewer = tenant.technician, tenant.viewer
    good = {"changes": [set_op("/a", 1, hlc(1))]}
    key = {"Idempotency-Key": "refused"}
    return [
        (str(session_id), key, good),  # no token
        (str(session_id), {**key, "Authorization": "Bearer not-a-token"}, good),
        (str(session_id), {**key, "Authorization": "Basic abc"}, good),
        (str(session_id), {**viewer.headers, **key}, good),  # a viewer may not write
        (str(session_id), tech.headers, good),  # no key
        (str(session_id), {**tech.headers, "Idempotency-Key": "bad key\x7f"}, good),
        (str(session_id), {**tech.headers, **key}, {"changes": [{"op": "nope"}]}),
        (str(session_id), {**tech.headers, **key}, {"changes": "x"}),
        (str(session_id), {**tech.headers, **key}, [1, 2]),
        ("not-a-uuid", {**tech.headers, **key}, good),
        (str(session_id).upper(), {**tech.headers, **key}, {"changes": [{"op": "nope"}]}),
        (str(session_id), {**tech.headers, **key}, {"changes": [set_op("/a", 1, "1970")]}),
    ]


async def test_refusals_are_the_declared_paths_answers(
    client: httpx.AsyncClient, make_tenant: Any, lean: LeanSpy
) -> None:
    tenant = await make_tenant()
    session_id = uuid.uuid4()
    answers = {}
    for enabled in (True, False):
        lean.enabled = enabled
        answers[enabled] = [
            (r.status_code, r.json())
            for r in [
                await _send(client, session, headers=headers, body=body)
                for session, headers, body in _refusals(tenant, session_id)
            ]
        ]
    assert lean.served == 0
    assert [status for status, _ in answers[True]] == [
        401,
        401,
        401,
        403,
        400,
        400,
        422,
        422,
        422,
        422,
        422,
        422,
    ]
    strip = [
        ({k: v for k, v in problem.items() if k not in PER_REQUEST}) for _, problem in answers[True]
    ]
    again = [
        ({k: v for k, v in problem.items() if k not in PER_REQUEST})
        for _, problem in answers[False]
    ]
    assert strip == again


async def test_a_revoked_token_writes_nothing(
    client: httpx.AsyncClient, make_tenant: Any, app: FastAPI, lean: LeanSpy
) -> None:
    """The revocation check rides in the write statement: a token revoked in the
    database is refused (401, the database's reason) and nothing is written."""
    tenant = await make_tenant()
    tech = tenant.technician
    async with app.state.database.sessionmaker() as db:
        await db.execute(
            update(User).where(User.id == tech.id).values(tokens_valid_after=utc_now())
        )
        await db.commit()
    session_id = uuid.uuid4()
    refused = await _send(
        client,
        str(session_id),
        headers={**tech.headers, "Idempotency-Key": "revoked"},
        body={"changes": [set_op("/a", 1, hlc(1))]},
    )
    assert (refused.status_code, refused.json()["detail"]) == (401, ALL_REVOKED)
    assert refused.headers["www-authenticate"] == 'Bearer realm="firemode"'
    read = await client.get(URL.format(session_id), headers=tenant.admin.headers)
    assert read.status_code == 404  # not even the draft session was created
