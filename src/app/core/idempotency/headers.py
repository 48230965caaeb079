"""The ``Idempotency-Key`` header: its syntax (IETF httpapi draft, RFC 8941 strings)."""

from __future__ import annotations

from fastapi import Request

from src.app.core.errors import ApiError

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255


def parse_idempotency_key(raw: str) -> str:
    """The key inside a header value: bare, or an RFC 8941 sf-string (``"..."``).

    Both spell the same key: ``abc`` and ``"abc"`` are one key. Raises ``ValueError``
    with a client-safe message when the value is not 1-255 printable ASCII characters.
    """
    value = raw.strip(" \t")
    if value.startswith('"'):
        key = _parse_sf_string(value)
    else:
        key = value
        # For ASCII, printable is exactly 0x20-0x7E (space included, DEL not).
        if not (key.isascii() and key.isprintable()):
            raise ValueError("must be printable ASCII characters")
    if not key:
        raise ValueError("must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"must be at most {MAX_KEY_LENGTH} characters")
    return key


def _parse_sf_string(value: str) -> str:
    # RFC 8941 section 4.2.5: printable ASCII, with only \" and \\ as escapes.
    out: list[str] = []
    index = 1
    while index < len(value):
        ch = value[index]
        if ch == "\\":
            nxt = value[index + 1 : index + 2]
            if nxt not in ('"', "\\"):
                raise ValueError('a quoted key may only escape \\" and \\\\')
            out.append(nxt)
            index += 2
            continue
        if ch == '"':
            if index != len(value) - 1:
                raise ValueError("has characters after the closing quote")
            return "".join(out)
        if not 0x20 <= ord(ch) <= 0x7E:
            raise ValueError("must be printable ASCII characters")
        out.append(ch)
        index += 1
    raise ValueError("a quoted key is missing its closing quote")


def header_key(request: Request, required: bool) -> str | None:
    """The request's key; ``ApiError`` 400 when malformed, repeated, or missing but required."""
    values = request.headers.getlist(IDEMPOTENCY_HEADER)
    if not values:
        if required:
            raise ApiError(400, f"This request needs an {IDEMPOTENCY_HEADER} header")
        return None
    if len(values) > 1:
        raise ApiError(400, f"Send exactly one {IDEMPOTENCY_HEADER} header")
    try:
        return parse_idempotency_key(values[0])
    except ValueError as exc:
        raise ApiError(400, f"The {IDEMPOTENCY_HEADER} header {exc}") from None
