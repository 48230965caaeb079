"""Pagination properties, checked with Hypothesis through HTTP against the real database:
walking every page returns every row exactly once, newest first; the last page's
``next_cursor`` is null (empty lists and exact multiples of ``limit`` included); rows
inserted during a walk never duplicate or hide a row that existed when it began."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.buildings.helpers import MakeTenant, walk
from tests.pagination.seeding import (
    ASSETS,
    BUILDINGS,
    KINDS,
    SESSIONS,
    ListKind,
    insert_rows,
    newest_first,
    prepare,
)

# Offsets in microseconds: a narrow range forces ties on created_at (so id decides), a
# wide one spreads rows over seconds; both keep microsecond precision significant.
offsets = st.one_of(st.integers(0, 5), st.integers(0, 2_000_000))
limits = st.one_of(st.integers(1, 8), st.integers(1, 130), st.just(500))

PROPERTY_SETTINGS = settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@PROPERTY_SETTINGS
@given(
    kind=st.sampled_from(KINDS),
    created=st.lists(offsets, max_size=120),
    limit=limits,
)
@example(kind=SESSIONS, created=[], limit=1)
@example(kind=SESSIONS, created=[0] * 10, limit=5)  # exact multiple, all tied
@example(kind=SESSIONS, created=list(range(12)), limit=4)  # exact multiple
@example(kind=SESSIONS, created=list(range(6)), limit=5)  # limit + 1
@example(kind=SESSIONS, created=list(range(120)), limit=500)
@example(kind=BUILDINGS, created=[], limit=50)
@example(kind=BUILDINGS, created=[7] * 6, limit=3)
@example(kind=ASSETS, created=[1, 1, 2, 2], limit=2)
@example(kind=ASSETS, created=[], limit=500)
async def test_walking_all_pages_returns_every_row_once_in_order(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_tenant: MakeTenant,
    kind: ListKind,
    created: list[int],
    limit: int,
) -> None:
    tenant = await make_tenant()
    parent = await prepare(app, tenant, kind)
    ids = await insert_rows(app, tenant, kind, parent, created)
    listed = await walk(client, kind.url(parent), tenant.viewer, limit=limit)
    assert [row["id"] for row in listed] == newest_first(list(zip(created, ids, strict=True)))


@st.composite
def insertions(draw: st.DrawFn) -> list[list[int]]:
    """Rows another client inserts after each page: older, tied, between, or newer."""
    return draw(st.lists(st.lists(st.integers(-10, 2_000_010), max_size=3), max_size=40))


@PROPERTY_SETTINGS
@given(
    kind=st.sampled_from((SESSIONS, BUILDINGS)),
    created=st.lists(offsets, min_size=1, max_size=100),
    limit=st.integers(1, 25),
    inserted=insertions(),
)
@example(kind=SESSIONS, created=[5] * 8, limit=3, inserted=[[5, 5], [5], [0, 10]])
async def test_rows_inserted_during_a_walk_never_cause_duplicates_or_gaps(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_tenant: MakeTenant,
    kind: ListKind,
    created: list[int],
    limit: int,
    inserted: list[list[int]],
) -> None:
    tenant = await make_tenant()
    parent = await prepare(app, tenant, kind)
    original = newest_first(
        list(zip(created, await insert_rows(app, tenant, kind, parent, created), strict=True))
    )
    seen: list[str] = []
    cursor: str | None = None
    page_number = 0
    while True:
        params = {"limit": str(limit), **({"cursor": cursor} if cursor else {})}
        response = await client.get(kind.url(parent), params=params, headers=tenant.viewer.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        seen.extend(row["id"] for row in page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        batch = inserted[page_number] if page_number < len(inserted) else []
        await insert_rows(app, tenant, kind, parent, batch)
        page_number += 1
    assert len(seen) == len(set(seen)), "a row was returned twice"
    original_set = set(original)
    assert [row_id for row_id in seen if row_id in original_set] == original
