"""What makes two requests "the same request" for one idempotency key."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fastapi import Request

_NOT_JSON = object()


def _digest(canonical: bytes, query: str) -> str:
    digest = hashlib.sha256(canonical)
    digest.update(b"\x00" + query.encode("latin-1", "replace"))
    return digest.hexdigest()


def _canonical(parsed: Any) -> bytes:
    return json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8", "surrogatepass"
    )


def request_fingerprint(body: bytes, query: str = "") -> str:
    """SHA-256 over the canonical JSON body (sorted keys, no whitespace) and the query.

    Key order and whitespace do not make a different request; a body that is not JSON is
    hashed as raw bytes.
    """
    if not body.strip():
        return _digest(b"", query)
    try:
        parsed = json.loads(body)
    except ValueError:
        return _digest(b"raw:" + body, query)
    return _digest(_canonical(parsed), query)


async def fingerprint_of(request: Request) -> str:
    """:func:`request_fingerprint` of a request, reusing the JSON the route already parsed.

    Starlette keeps what ``request.json()`` parsed, and FastAPI parses a JSON body through
    it, so the body is parsed once per request.
    """
    body = await request.body()
    query = request.url.query
    if not body.strip():
        return _digest(b"", query)
    try:
        parsed = await request.json()
    except ValueError:
        return _digest(b"raw:" + body, query)
    return _digest(_canonical(parsed), query)
