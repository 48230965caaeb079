"""Opaque, signed pagination cursors (pure: no I/O).

A cursor carries the keyset position (the sort key, a timestamp with microseconds or a
day, and ``id``) and a
digest of the list it belongs to (endpoint, filters, organisation). It is HMAC-signed, so
a tampered, truncated or foreign cursor is detected and refused.

Wire form: ``base64url(payload) "." base64url(signature)``, unpadded. Decoding is strict
(alphabet checked, canonical encoding required), so no two strings decode to one cursor:
an altered character is always detected, even in base64's unused trailing bits.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

CURSOR_VERSION = 1
# A genuine cursor is ~170 characters; anything far longer was not issued by us.
MAX_CURSOR_LENGTH = 512
_SIGNATURE_BYTES = 16
_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_WIRE_FORM = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


class InvalidCursor(ValueError):
    """The cursor was not issued by this server for this list."""


@dataclass(frozen=True, slots=True)
class CursorPosition:
    """The last row of a page: the next page starts strictly after it. ``key`` is the
    list's sort key (``created_at`` for most lists)."""

    key: datetime | date
    id: uuid.UUID


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64encode(raw) != text:  # non-canonical (e.g. altered padding bits)
        raise ValueError("non-canonical base64")
    return raw


def scope_digest(endpoint: str, filters: Mapping[str, Any], organisation_id: uuid.UUID) -> str:
    """Binds a cursor to one list: same endpoint, same filters, same organisation.

    Filters whose value is ``None`` are dropped, so "not given" has one spelling. Callers
    pass filters already normalised (e.g. a repeatable filter sorted and de-duplicated).
    """
    canonical = json.dumps(
        {
            "e": endpoint,
            "f": {name: value for name, value in filters.items() if value is not None},
            "o": str(organisation_id),
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _signature(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, b"firemode-cursor\x00" + payload, hashlib.sha256).digest()[
        :_SIGNATURE_BYTES
    ]


def encode_cursor(key: bytes, position: CursorPosition, scope: str) -> str:
    sort_key: dict[str, str]
    if isinstance(position.key, datetime):
        sort_key = {"t": position.key.astimezone(UTC).strftime(_TIMESTAMP_FORMAT)}
    else:
        sort_key = {"d": position.key.isoformat()}
    payload = json.dumps(
        {"v": CURSOR_VERSION, **sort_key, "i": position.id.hex, "s": scope},
        separators=(",", ":"),
    ).encode()
    return f"{_b64encode(payload)}.{_b64encode(_signature(key, payload))}"


def decode_cursor(key: bytes, cursor: str, scope: str) -> CursorPosition:
    """The position inside ``cursor``; ``InvalidCursor`` unless we issued it for ``scope``."""
    if len(cursor) > MAX_CURSOR_LENGTH or not _WIRE_FORM.fullmatch(cursor):
        raise InvalidCursor("The cursor is malformed")
    payload_text, signature_text = cursor.split(".", 1)
    try:
        payload = _b64decode(payload_text)
        signature = _b64decode(signature_text)
    except (ValueError, binascii.Error) as exc:
        raise InvalidCursor("The cursor is malformed") from exc
    if not hmac.compare_digest(signature, _signature(key, payload)):
        raise InvalidCursor("The cursor is invalid or has been altered")
    try:
        data = json.loads(payload)
        version = data["v"]
        sort_key: datetime | date
        if "t" in data:
            sort_key = datetime.strptime(data["t"], _TIMESTAMP_FORMAT).replace(tzinfo=UTC)
        else:
            sort_key = date.fromisoformat(data["d"])
        position = CursorPosition(sort_key, uuid.UUID(hex=data["i"]))
        cursor_scope = data["s"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidCursor("The cursor is malformed") from exc
    if version != CURSOR_VERSION:
        raise InvalidCursor("The cursor's version is not supported")
    if not isinstance(cursor_scope, str) or not hmac.compare_digest(cursor_scope, scope):
        raise InvalidCursor(
            "The cursor belongs to another list (endpoint, filters or organisation)"
        )
    return position
