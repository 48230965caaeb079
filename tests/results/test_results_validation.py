"""Every bad input of results sync (docs/api/results-sync.md): its status, nothing changed."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.results.conftest import ResultsApi, del_op, hlc, hlc_from_now, set_op

GOOD = set_op("/ok", "fine", hlc(1))
BIG = "x" * (64 * 1024)  # as a JSON string: 2 quote bytes over 64 KiB


def deep_path(levels: int) -> str:
    return "".join(f"/l{i}" for i in range(levels))


# (name, body, expected pointers). Each bad change sits next to good ones: nothing of the
# batch may be applied.
BAD_BODIES: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "unknown op",
        {"changes": [GOOD, {"op": "merge", "path": "/a", "value": 1}]},
        ["/changes/1/op"],
    ),
    ("path without slash", {"changes": [GOOD, set_op("a/b", 1)]}, ["/changes/1/path"]),
    ("empty path", {"changes": [set_op("", 1)]}, ["/changes/0/path"]),
    ("bad escape", {"changes": [set_op("/a~2b", 1)]}, ["/changes/0/path"]),
    ("path not a string", {"changes": [{"op": "set", "path": 7, "value": 1}]}, ["/changes/0/path"]),
    ("set without value", {"changes": [GOOD, {"op": "set", "path": "/a"}]}, ["/changes/1/value"]),
    (
        "delete with value",
        {"changes": [{"op": "delete", "path": "/a", "value": 1}]},
        ["/changes/0/value"],
    ),
    ("too many changes", {"changes": [set_op(f"/k{i}", i) for i in range(1001)]}, ["/changes"]),
    ("no changes", {"changes": []}, ["/changes"]),
    ("value over 64 KiB", {"changes": [GOOD, set_op("/big", BIG)]}, ["/changes/1/value"]),
    ("malformed ts", {"changes": [set_op("/a", 1, "2026-11-30T23:10:04Z")]}, ["/changes/0/ts"]),
    (
        "ts without counter",
        {"changes": [set_op("/a", 1, "2026-11-30T23:10:04.120Z")]},
        ["/changes/0/ts"],
    ),
    (
        "ts not a date",
        {"changes": [set_op("/a", 1, "2026-02-30T23:10:04.120Z/0001")]},
        ["/changes/0/ts"],
    ),
    (
        "ts not a string",
        {"changes": [{"op": "set", "path": "/a", "value": 1, "ts": 17}]},
        ["/changes/0/ts"],
    ),
    ("ts six minutes ahead", {"changes": [GOOD, set_op("/a", 1, "<ahead>")]}, ["/changes/1/ts"]),
    ("path deeper than 32", {"changes": [set_op(deep_path(33), 1)]}, ["/changes/0/path"]),
    ("path too long", {"changes": [set_op("/" + "p" * 2048, 1)]}, ["/changes/0/path"]),
    ("NUL in path", {"changes": [set_op("/a\u0000b", 1)]}, ["/changes/0/path"]),
    ("NUL in value", {"changes": [set_op("/a", {"k\u0000": "v"})]}, ["/changes/0/value"]),
    ("unknown change field", {"changes": [{**GOOD, "colour": "red"}]}, ["/changes/0/colour"]),
    ("unknown top-level field", {"changes": [GOOD], "devcie_id": "t"}, ["/devcie_id"]),
    ("changes missing", {"device_id": "t"}, ["/changes"]),
    ("empty device_id", {"changes": [GOOD], "device_id": ""}, ["/device_id"]),
    ("control char in device_id", {"changes": [GOOD], "device_id": "t\x1f1"}, ["/device_id"]),
    ("op_id too long", {"changes": [{**GOOD, "op_id": "o" * 129}]}, ["/changes/0/op_id"]),
    (
        "several problems at once",
        {"changes": [set_op("x", 1), GOOD, {"op": "set", "path": "/y"}, del_op("/z", "nope")]},
        ["/changes/0/path", "/changes/2/value", "/changes/3/ts"],
    ),
]


@pytest.fixture
async def populated(results_api: ResultsApi, make_tenant: Any) -> tuple[Any, uuid.UUID]:
    tenant = await make_tenant()
    session_id = uuid.uuid4()
    response = await results_api.post(
        tenant.technician, session_id, [set_op("/existing", {"value": 1}, hlc(0))], device_id="t"
    )
    assert response.status_code == 200
    return tenant, session_id


@pytest.mark.parametrize(("name", "body", "pointers"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
async def test_bad_input_is_422_with_pointers_and_changes_nothing(
    results_api: ResultsApi,
    populated: tuple[Any, uuid.UUID],
    name: str,
    body: dict[str, Any],
    pointers: list[str],
) -> None:
    tenant, session_id = populated
    if name == "ts six minutes ahead":
        body = {"changes": [GOOD, set_op("/a", 1, hlc_from_now(6 * 60))]}
    before = await results_api.state(tenant.technician, session_id)

    response = await results_api.post(tenant.technician, session_id, body=body)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert (problem["error_code"], problem["retryable"]) == ("FIRE-422", False)
    assert sorted({e["pointer"] for e in problem["errors"]}) == sorted(pointers)
    assert await results_api.state(tenant.technician, session_id) == before


async def test_bad_input_does_not_create_an_unknown_session(
    results_api: ResultsApi, make_tenant: Any
) -> None:
    tenant = await make_tenant()
    session_id = uuid.uuid4()
    response = await results_api.post(tenant.technician, session_id, [set_op("bad", 1)])
    assert response.status_code == 422
    assert (await results_api.get(tenant.technician, session_id)).status_code == 404


async def test_missing_idempotency_key_is_400_and_changes_nothing(
    results_api: ResultsApi, populated: tuple[Any, uuid.UUID]
) -> None:
    tenant, session_id = populated
    before = await results_api.state(tenant.technician, session_id)
    response = await results_api.client.post(
        f"/v1/tests/sessions/{session_id}/results",
        json={"changes": [set_op("/a", 1)]},
        headers=tenant.technician.headers,
    )
    assert response.status_code == 400
    assert (response.json()["error_code"], response.json()["retryable"]) == ("FIRE-400", False)
    assert "Idempotency-Key" in response.json()["detail"]
    assert await results_api.state(tenant.technician, session_id) == before


async def test_limits_are_inclusive(results_api: ResultsApi, make_tenant: Any) -> None:
    """Exactly 1,000 changes, 32 levels, 64 KiB, and a ts 4 minutes ahead are accepted."""
    tenant = await make_tenant()
    session_id = uuid.uuid4()
    changes = [set_op(f"/k/{i}", i) for i in range(997)]
    changes.append(set_op(deep_path(32), "deep"))
    changes.append(set_op("/big", "x" * (64 * 1024 - 2)))
    changes.append(set_op("/soon", 1, hlc_from_now(4 * 60)))
    response = await results_api.post(tenant.technician, session_id, changes)
    assert response.status_code == 200, response.text
    assert (response.json()["applied"], response.json()["version"]) == (1000, 1000)
    document = response.json()["document"]
    assert len(document["big"]) == 64 * 1024 - 2
    node = document
    for i in range(31):
        node = node[f"l{i}"]
    assert node == {"l31": "deep"}


async def test_merged_document_over_5_mib_is_refused_whole(
    results_api: ResultsApi, make_tenant: Any
) -> None:
    tenant = await make_tenant()
    tech = tenant.technician
    chunk = "v" * (60 * 1024)
    session_id = uuid.uuid4()
    first = [set_op(f"/photos/{i}", chunk) for i in range(50)]  # about 3 MiB
    assert (await results_api.post(tech, session_id, first)).status_code == 200
    before = await results_api.state(tech, session_id)

    second = [set_op(f"/photos/{i}", chunk) for i in range(50, 90)] + [set_op("/small", 1)]
    response = await results_api.post(tech, session_id, second)
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"pointer": "/changes", "detail": "the merged document is too large"}
    ]
    assert await results_api.state(tech, session_id) == before
    # Replacing values instead of adding them stays under the limit.
    response = await results_api.post(tech, session_id, [set_op("/photos/0", "small")])
    assert (response.status_code, response.json()["version"]) == (200, 51)

    # A new session refused for size is not created either.
    fresh = uuid.uuid4()
    too_big = [set_op(f"/p/{i}", chunk) for i in range(90)]
    assert (await results_api.post(tech, fresh, too_big)).status_code == 422
    assert (await results_api.get(tech, fresh)).status_code == 404


async def test_null_is_a_value_and_deleting_nothing_is_fine(
    results_api: ResultsApi, make_tenant: Any
) -> None:
    tenant = await make_tenant()
    session_id = uuid.uuid4()
    response = await results_api.post(
        tenant.technician,
        session_id,
        [
            set_op("/note", None, hlc(1)),
            del_op("/never/there", hlc(2)),
            set_op("/ a ", " b ", hlc(3)),
        ],
    )
    assert response.status_code == 200
    assert response.json()["document"] == {"note": None, " a ": " b "}
    assert response.json()["version"] == 3
