"""Opaque, signed pagination cursors (pure: no I/O).

A cursor carries the keyset position (``created_at`` with microseconds, ``id``) and a
digest of the list it belongs to (endpoint, filters, organisation). It is HMAC-signed, so
a tampered, truncated or foreign cursor is detected and refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

CURSOR_VERSION = 1
_SIGNATURE_BYTES = 16


class InvalidCursor(ValueError):
    """The cursor was not issued by this server for this list."""


@dataclass(frozen=True, slots=True)
class CursorPosition:
    created_at: datetime
    id: uuid.UUID


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def scope_digest(endpoint: str, filters: dict[str, Any], organisation_id: uuid.UUID) -> str:
    """Binds a cursor to one list: same endpoint, same filters, same organisation."""
    canonical = json.dumps(
        {"e": endpoint, "f": filters, "o": str(organisation_id)},
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
    created = position.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    payload = json.dumps(
        {"v": CURSOR_VERSION, "t": created, "i": position.id.hex, "s": scope},
        separators=(",", ":"),
    ).encode()
    return f"{_b64encode(payload)}.{_b64encode(_signature(key, payload))}"


def decode_cursor(key: bytes, cursor: str, scope: str) -> CursorPosition:
    try:
        payload_text, signature_text = cursor.split(".", 1)
        payload = _b64decode(payload_text)
        signature = _b64decode(signature_text)
    except (ValueError, binascii.Error) as exc:
        raise InvalidCursor("The cursor is malformed") from exc
    if not hmac.compare_digest(signature, _signature(key, payload)):
        raise InvalidCursor("The cursor is invalid or has been altered")
    try:
        data = json.loads(payload)
        if data["v"] != CURSOR_VERSION:
            raise InvalidCursor("The cursor's version is not supported")
        created_at = datetime.strptime(data["t"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        position = CursorPosition(created_at, uuid.UUID(hex=data["i"]))
        cursor_scope = data["s"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidCursor("The cursor is malformed") from exc
    if not hmac.compare_digest(str(cursor_scope), scope):
        raise InvalidCursor(
            "The cursor belongs to another list (endpoint, filters or organisation)"
        )
    return position
