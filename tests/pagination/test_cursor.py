"""The cursor codec as pure functions: round trips, binding, and every kind of forgery."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from src.app.core.cursor import (
    MAX_CURSOR_LENGTH,
    CursorPosition,
    InvalidCursor,
    decode_cursor,
    encode_cursor,
    scope_digest,
)

KEY = b"k" * 32
ORG = uuid.UUID("00000000-0000-4000-8000-000000000001")
SCOPE = scope_digest("GET /v1/things", {"status": ["draft"]}, ORG)
POSITION = CursorPosition(datetime(2026, 12, 1, 8, 0, 0, 123456, tzinfo=UTC), uuid.uuid4())

timestamps = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 31), timezones=st.just(UTC)
)


@given(created_at=timestamps, row_id=st.uuids())
def test_round_trip_keeps_microseconds(created_at: datetime, row_id: uuid.UUID) -> None:
    position = CursorPosition(created_at, row_id)
    assert decode_cursor(KEY, encode_cursor(KEY, position, SCOPE), SCOPE) == position


def test_scope_binds_endpoint_filters_and_organisation() -> None:
    base = scope_digest("GET /v1/things", {"status": ["draft"], "q": None}, ORG)
    assert base == SCOPE  # a None filter is the same as an absent one
    others = [
        scope_digest("GET /v1/other", {"status": ["draft"]}, ORG),
        scope_digest("GET /v1/things", {"status": ["scheduled"]}, ORG),
        scope_digest("GET /v1/things", {"status": ["draft"], "q": "x"}, ORG),
        scope_digest("GET /v1/things", {}, ORG),
        scope_digest("GET /v1/things", {"status": ["draft"]}, uuid.uuid4()),
    ]
    assert base not in others
    cursor = encode_cursor(KEY, POSITION, SCOPE)
    for other in others:
        with pytest.raises(InvalidCursor, match="another list"):
            decode_cursor(KEY, cursor, other)


def test_another_key_is_refused() -> None:
    cursor = encode_cursor(b"z" * 32, POSITION, SCOPE)
    with pytest.raises(InvalidCursor, match="altered"):
        decode_cursor(KEY, cursor, SCOPE)


@given(data=st.data())
def test_any_single_character_change_is_refused(data: st.DataObject) -> None:
    cursor = encode_cursor(KEY, POSITION, SCOPE)
    index = data.draw(st.integers(0, len(cursor) - 1))
    replacement = data.draw(st.characters(codec="ascii").filter(lambda c: c != cursor[index]))
    with pytest.raises(InvalidCursor):
        decode_cursor(KEY, cursor[:index] + replacement + cursor[index + 1 :], SCOPE)


@given(data=st.data())
def test_every_truncation_is_refused(data: st.DataObject) -> None:
    cursor = encode_cursor(KEY, POSITION, SCOPE)
    cut = data.draw(st.integers(0, len(cursor) - 1))
    with pytest.raises(InvalidCursor):
        decode_cursor(KEY, cursor[:cut], SCOPE)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "forged",
    [
        "",
        ".",
        "abc",
        "abc.",
        ".abc",
        "a.b.c",
        "é.é",
        "x" * (MAX_CURSOR_LENGTH + 1),
        _b64(
            json.dumps(
                {"v": 1, "t": "2026-01-01T00:00:00.000000Z", "i": "0" * 32, "s": SCOPE}
            ).encode()
        )
        + ".AAAAAAAAAAAAAAAAAAAAAA",
    ],
)
def test_forgeries_are_refused(forged: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(KEY, forged, SCOPE)


def test_padding_or_extra_characters_are_refused() -> None:
    cursor = encode_cursor(KEY, POSITION, SCOPE)
    payload, signature = cursor.split(".")
    for variant in (
        f"{payload}=.{signature}",
        f"{payload}.{signature}==",
        f" {cursor}",
        cursor + "\n",
    ):
        with pytest.raises(InvalidCursor):
            decode_cursor(KEY, variant, SCOPE)
