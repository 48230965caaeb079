"""Results sync through HTTP: merging, convergence, rebuilds, delta pull, tenancy."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from src.app.results.hlc import HLCTimestamp
from src.app.sessions.models import TestSession
from tests.results.conftest import HLC_RE, ResultsApi, del_op, hlc, set_op

A, B = "tablet-A", "tablet-B"

# Two devices editing one session offline. Timestamps are seconds after BASE.
A_OPS = {
    "a1": set_op("/assets/ext-1", {"pressure_kpa": 1000, "note": "old"}, hlc(1), "a1"),
    "a2": set_op("/assets/ext-1/pressure_kpa", 1210, hlc(3), "a2"),
    "a3": del_op("/assets/ext-1/note", hlc(5), "a3"),
    "a4": set_op("/summary", "pass", hlc(7), "a4"),
    "a5": set_op("/assets/ext-1/pressure_kpa", 1300, hlc(8), "a5"),
    "a6": set_op("/assets/ext-2/pressure_kpa", 900, hlc(2.5), "a6"),
}
# Device B sends no op_ids: its retries are recognised by (ts, device, path, op, value).
B_OPS = {
    "b1": set_op("/assets/ext-1/pressure_kpa", 1190, hlc(2)),  # older than a2: loses
    "b2": set_op("/assets/ext-1/seal", True, hlc(4)),
    "b3": set_op("/assets/ext-1", {"replaced": True}, hlc(6)),  # newer parent: hides all above
    "b4": set_op("/summary/status", "fail", hlc(7)),  # same ts as a4: device B sorts later
    "b5": set_op("/a~1b/c~0d", "escaped", hlc(9)),
}
EXPECTED = {
    "assets": {"ext-1": {"replaced": True, "pressure_kpa": 1300}, "ext-2": {"pressure_kpa": 900}},
    "summary": {"status": "fail"},
    "a/b": {"c~d": "escaped"},
}
DISTINCT_OPS = len(A_OPS) + len(B_OPS)


def batch(ops: dict[str, dict[str, Any]], *names: str) -> list[dict[str, Any]]:
    return [ops[name] for name in names]


async def _sync(
    api: ResultsApi, user: Any, session_id: uuid.UUID, schedule: list[tuple[str, list[Any]]]
) -> tuple[int, int]:
    applied = duplicates = 0
    for device, changes in schedule:
        response = await api.post(user, session_id, changes, device_id=device)
        assert response.status_code == 200, response.text
        applied += response.json()["applied"]
        duplicates += response.json()["duplicates"]
    return applied, duplicates


async def test_two_devices_in_different_orders_converge(
    results_api: ResultsApi, make_tenant: Any
) -> None:
    tenant = await make_tenant()
    tech = tenant.technician
    first, second = uuid.uuid4(), uuid.uuid4()
    # Interleaved as the devices came online, with A retrying a batch under a new key.
    forward = [
        (A, batch(A_OPS, "a1", "a2")),
        (B, batch(B_OPS, "b1", "b2")),
        (A, batch(A_OPS, "a3", "a4", "a6")),
        (A, batch(A_OPS, "a2", "a3")),
        (B, batch(B_OPS, "b3", "b4")),
        (A, batch(A_OPS, "a5")),
        (B, batch(B_OPS, "b5")),
    ]
    # The same ops, newest batches first, regrouped, with B resending overlapping ops.
    backward = [
        (B, batch(B_OPS, "b5", "b3")),
        (A, batch(A_OPS, "a5")),
        (B, batch(B_OPS, "b4", "b2", "b1")),
        (A, batch(A_OPS, "a6", "a4", "a3")),
        (B, batch(B_OPS, "b1", "b5", "b3")),
        (A, batch(A_OPS, "a2", "a1")),
    ]
    applied_1, duplicates_1 = await _sync(results_api, tech, first, forward)
    applied_2, duplicates_2 = await _sync(results_api, tech, second, backward)

    assert (applied_1, duplicates_1) == (DISTINCT_OPS, 2)
    assert (applied_2, duplicates_2) == (DISTINCT_OPS, 3)
    assert await results_api.state(tech, first) == (DISTINCT_OPS, EXPECTED)
    assert await results_api.state(tech, second) == (DISTINCT_OPS, EXPECTED)
    # What a device pulling from scratch gets is the same ops, whatever the arrival order.
    ops_1 = (await results_api.get(tech, first, since=0)).json()["ops"]
    ops_2 = (await results_api.get(tech, second, since=0)).json()["ops"]
    strip = [{k: v for k, v in op.items() if k != "version"} for op in ops_1]
    assert sorted(strip, key=lambda o: o["op_id"]) == sorted(
        ({k: v for k, v in op.items() if k != "version"} for op in ops_2),
        key=lambda o: o["op_id"],
    )
    assert [op["version"] for op in ops_2] == list(range(1, DISTINCT_OPS + 1))


async def test_op_older_than_everything_applied_merges_without_a_rebuild(
    results_api: ResultsApi, make_tenant: Any
) -> None:
    tenant = await make_tenant()
    tech = tenant.technician
    session_id = uuid.uuid4()
    response = await results_api.post(
        tech, session_id, [set_op("/a/x", 1, hlc(100)), set_op("/b", 1, hlc(100, 1))]
    )
    assert response.status_code == 200
    merges = await results_api.metric("firemode_results_merges_total", 'mode="state"')

    # From a device that was offline: all older than what is merged. Applying them on
    # top of the document would turn /a into a scalar and delete /b; the merge keeps both.
    response = await results_api.post(
        tech,
        session_id,
        [set_op("/a", "scalar", hlc(50)), del_op("/b", hlc(60)), set_op("/c", 3, hlc(10))],
        device_id="offline-tablet",
    )
    assert response.status_code == 200
    expected = {"a": {"x": 1}, "b": 1, "c": 3}
    assert response.json()["document"] == expected
    assert response.json()["version"] == 5
    assert await results_api.state(tech, session_id) == (5, expected)
    # Late or not, every merge folds into the per-path state: nothing replays the log.
    assert await results_api.metric("firemode_results_merges_total", 'mode="state"') == (merges + 1)
    assert await results_api.metric("firemode_results_merges_total", 'mode="rebuild"') == 0

    response = await results_api.post(tech, session_id, [set_op("/a", "newest", hlc(200))])
    assert response.json()["document"] == {"a": "newest", "b": 1, "c": 3}
    assert await results_api.metric("firemode_results_merges_total", 'mode="state"') == (merges + 2)


async def test_delta_pull_returns_exactly_the_missing_ops(
    results_api: ResultsApi, make_tenant: Any
) -> None:
    tenant = await make_tenant()
    tech = tenant.technician
    session_id = uuid.uuid4()
    first = [set_op("/r/1", "a", hlc(1), "op-1"), set_op("/r/2", "b", hlc(2), "op-2")]
    second = [
        del_op("/r/1", hlc(3), "op-3"),
        set_op("/r/3", None, hlc(4), "op-4"),
        set_op("/r/4", {"deep": [1, 2]}, hlc(5), "op-5"),
    ]
    third = [set_op("/r/2", "c", hlc(6), "op-6")]
    for changes in (first, second, third):
        assert (await results_api.post(tech, session_id, changes, device_id=A)).status_code == 200

    response = await results_api.get(tenant.viewer, session_id, since=2)
    assert response.status_code == 200
    body = response.json()
    assert body["version"] == 6
    assert body["document"] == {"r": {"2": "c", "3": None, "4": {"deep": [1, 2]}}}
    assert body["next_since"] is None
    assert body["ops"] == [
        {
            "version": 3,
            "op": "delete",
            "path": "/r/1",
            "ts": hlc(3),
            "device_id": A,
            "op_id": "op-3",
        },
        {
            "version": 4,
            "op": "set",
            "path": "/r/3",
            "value": None,
            "ts": hlc(4),
            "device_id": A,
            "op_id": "op-4",
        },
        {
            "version": 5,
            "op": "set",
            "path": "/r/4",
            "value": {"deep": [1, 2]},
            "ts": hlc(5),
            "device_id": A,
            "op_id": "op-5",
        },
        {
            "version": 6,
            "op": "set",
            "path": "/r/2",
            "value": "c",
            "ts": hlc(6),
            "device_id": A,
            "op_id": "op-6",
        },
    ]

    up_to_date = (await results_api.get(tech, session_id, since=6)).json()
    assert (up_to_date["ops"], up_to_date["next_since"]) == ([], None)
    ahead = (await results_api.get(tech, session_id, since=60)).json()
    assert (ahead["ops"], ahead["next_since"]) == ([], None)

    page_1 = (await results_api.get(tech, session_id, since=0, limit=4)).json()
    assert [op["op_id"] for op in page_1["ops"]] == ["op-1", "op-2", "op-3", "op-4"]
    assert page_1["next_since"] == 4
    page_2 = (await results_api.get(tech, session_id, since=4, limit=4)).json()
    assert [op["op_id"] for op in page_2["ops"]] == ["op-5", "op-6"]
    assert page_2["next_since"] is None

    plain = (await results_api.get(tech, session_id)).json()
    assert set(plain) == {"session_id", "version", "document"}
    assert plain["session_id"] == str(session_id)

    for params in (
        {"since": -1},
        {"since": 2**63},
        {"since": "v1"},
        {"since": 0, "limit": 0},
        {"since": 0, "limit": 10_001},
    ):
        bad = await results_api.client.get(
            f"/v1/tests/sessions/{session_id}/results", params=params, headers=tech.headers
        )
        assert bad.status_code == 422
        assert bad.json()["error_code"] == "FIRE-422"


async def test_minimal_body_creates_a_draft_session_and_is_stamped_by_the_server(
    results_api: ResultsApi, make_tenant: Any
) -> None:
    tenant = await make_tenant()
    tech = tenant.technician
    session_id = uuid.uuid4()
    before = datetime.now(UTC)
    response = await results_api.post(tech, session_id, [set_op("/test", "data")])
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"session_id", "version", "applied", "duplicates", "server_ts", "document"}
    assert (body["session_id"], body["version"], body["applied"], body["duplicates"]) == (
        str(session_id),
        1,
        1,
        0,
    )
    assert body["document"] == {"test": "data"}

    [op] = (await results_api.get(tech, session_id, since=0)).json()["ops"]
    assert op["device_id"] == f"user:{tech.id}"
    assert op["op_id"].startswith("h:")
    assert HLC_RE.match(op["ts"]) and HLC_RE.match(body["server_ts"])
    assert body["server_ts"] > op["ts"]
    stamped_ms = HLCTimestamp.parse(op["ts"]).wall_ms
    # The process clock never runs behind real time, and at most the allowed skew ahead
    # (other tests may have sent it timestamps from slightly fast devices).
    skew_ms = results_api.app.state.settings.max_clock_skew_seconds * 1000
    now_ms = datetime.now(UTC).timestamp() * 1000
    assert before.timestamp() * 1000 - 1 <= stamped_ms <= now_ms + skew_ms

    async with results_api.app.state.database.sessionmaker() as db:
        created = await db.scalar(select(TestSession).where(TestSession.id == session_id))
    assert created is not None
    assert (created.organisation_id, created.status, created.building_id) == (
        tenant.organisation_id,
        "draft",
        None,
    )
    assert (created.session_name, created.created_by) == ("", tech.id)


async def test_server_stamped_ops_keep_batch_order_and_the_sent_device(
    results_api: ResultsApi, make_tenant: Any
) -> None:
    tenant = await make_tenant()
    tech = tenant.technician
    session_id = uuid.uuid4()
    changes = [set_op("/x", 1), set_op("/x", 2), set_op("/y", "kept")]
    response = await results_api.post(tech, session_id, changes, device_id="phone-3")
    assert response.json()["document"] == {"x": 2, "y": "kept"}
    ops = (await results_api.get(tech, session_id, since=0)).json()["ops"]
    assert [op["device_id"] for op in ops] == ["phone-3"] * 3
    assert ops[0]["ts"] < ops[1]["ts"] < ops[2]["ts"]
    # A later server-stamped op sorts after ops stamped by a device (even slightly ahead).
    device_ts = str(HLCTimestamp(int(datetime.now(UTC).timestamp() * 1000) + 60_000, 7))
    await results_api.post(tech, session_id, [set_op("/x", "device", device_ts)], device_id="t")
    response = await results_api.post(tech, session_id, [set_op("/x", "server")])
    assert response.json()["document"]["x"] == "server"


async def test_duplicates_are_counted_and_not_applied(
    results_api: ResultsApi, make_tenant: Any
) -> None:
    tenant = await make_tenant()
    tech = tenant.technician
    session_id = uuid.uuid4()
    response = await results_api.post(
        tech,
        session_id,
        [set_op("/v", "first", hlc(1), "dup-1"), set_op("/v", "same id", hlc(2), "dup-1")],
        device_id=A,
    )
    assert (response.json()["applied"], response.json()["duplicates"]) == (1, 1)
    # The same op_id again, even with other content, is an op already received.
    response = await results_api.post(
        tech,
        session_id,
        [set_op("/v", "changed", hlc(3), "dup-1"), set_op("/w", 1, hlc(4))],
        device_id=A,
    )
    assert (response.json()["applied"], response.json()["duplicates"]) == (1, 1)
    # Without op_id: the same (ts, device, path, op, value) is the same op.
    response = await results_api.post(tech, session_id, [set_op("/w", 1, hlc(4))], device_id=A)
    assert (
        response.json()["applied"],
        response.json()["duplicates"],
        response.json()["version"],
    ) == (
        0,
        1,
        2,
    )
    response = await results_api.post(tech, session_id, [set_op("/w", 1, hlc(4))], device_id=B)
    assert (response.json()["applied"], response.json()["duplicates"]) == (1, 0)
    assert await results_api.state(tech, session_id) == (3, {"v": "first", "w": 1})


async def test_completed_session_refuses_results(results_api: ResultsApi, make_tenant: Any) -> None:
    tenant = await make_tenant()
    tech = tenant.technician
    session_id = uuid.uuid4()
    assert (await results_api.post(tech, session_id, [set_op("/a", 1)])).status_code == 200
    await results_api.set_status(session_id, "completed")
    before = await results_api.state(tech, session_id)

    response = await results_api.post(tech, session_id, [set_op("/a", 2), set_op("/b", 3)])
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert (response.json()["error_code"], response.json()["retryable"]) == ("FIRE-409", False)
    assert await results_api.state(tech, session_id) == before


async def test_tenancy_and_roles(results_api: ResultsApi, make_tenant: Any) -> None:
    owner, other = await make_tenant(), await make_tenant()
    session_id = uuid.uuid4()
    assert (
        await results_api.post(owner.technician, session_id, [set_op("/a", 1)])
    ).status_code == (200)
    assert (await results_api.post(owner.admin, session_id, [set_op("/b", 2)])).status_code == 200
    before = await results_api.state(owner.viewer, session_id)

    # Another organisation's session is not found, for writing and for reading.
    response = await results_api.post(other.technician, session_id, [set_op("/a", "x")])
    assert (response.status_code, response.json()["error_code"]) == (404, "FIRE-404")
    assert (await results_api.get(other.admin, session_id)).status_code == 404
    # A viewer may read but not write.
    response = await results_api.post(owner.viewer, session_id, [set_op("/a", "x")])
    assert (response.status_code, response.json()["error_code"]) == (403, "FIRE-403")
    assert await results_api.state(owner.viewer, session_id) == before
    # Refused requests create nothing: the viewer's unknown id stays unknown.
    unknown = uuid.uuid4()
    assert (await results_api.post(owner.viewer, unknown, [set_op("/a", 1)])).status_code == 403
    assert (await results_api.get(owner.admin, unknown)).status_code == 404
    # Without a token: 401.
    response = await results_api.client.post(
        f"/v1/tests/sessions/{unknown}/results",
        json={"changes": [set_op("/a", 1)]},
        headers={"Idempotency-Key": "k"},
    )
    assert response.status_code == 401


async def test_concurrent_submissions_lose_no_op(results_api: ResultsApi, make_tenant: Any) -> None:
    tenant = await make_tenant()
    tech = tenant.technician
    session_id = uuid.uuid4()  # created by whichever request gets there first
    shared = [set_op("/shared/a", "s", hlc(0.5), "shared-a"), del_op("/gone", hlc(0.6), "shared-b")]
    requests = 8
    per_request = 5
    batches = [
        [set_op(f"/dev/{r}/{i}", i, hlc(r + i / 10), f"r{r}-{i}") for i in range(per_request)]
        + shared
        for r in range(requests)
    ]
    responses = await asyncio.gather(
        *(results_api.post(tech, session_id, b, device_id=f"d{r}") for r, b in enumerate(batches))
    )
    assert [r.status_code for r in responses] == [200] * requests
    total = requests * per_request + len(shared)
    assert sum(r.json()["applied"] for r in responses) == total
    assert sum(r.json()["duplicates"] for r in responses) == (requests - 1) * len(shared)
    assert sorted(r.json()["version"] for r in responses)[-1] == total
    expected = {
        "shared": {"a": "s"},
        "dev": {str(r): {str(i): i for i in range(per_request)} for r in range(requests)},
    }
    assert await results_api.state(tech, session_id) == (total, expected)
    ops = (await results_api.get(tech, session_id, since=0)).json()["ops"]
    assert [op["version"] for op in ops] == list(range(1, total + 1))
