"""What a delivery looks like on the wire (pure): its body, its signature, its retries.

The receiver checks ``FireMode-Signature`` = ``v1=`` + hex HMAC-SHA256, keyed with the
subscription's secret, over ``<FireMode-Timestamp>.<raw body>``; it should refuse
timestamps far from its clock (replays) and de-duplicate on ``FireMode-Event-Id``
(delivery is at least once).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import secrets
from datetime import datetime
from typing import Any

from src.app.core.clock import to_rfc3339

SIGNATURE_HEADER = "FireMode-Signature"
TIMESTAMP_HEADER = "FireMode-Timestamp"
EVENT_ID_HEADER = "FireMode-Event-Id"
EVENT_TYPE_HEADER = "FireMode-Event-Type"
DELIVERY_ID_HEADER = "FireMode-Delivery-Id"
ATTEMPT_HEADER = "FireMode-Delivery-Attempt"
SIGNATURE_VERSION = "v1"


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def event_body(
    *,
    event_id: str,
    event_type: str,
    organisation_id: str,
    created_at: datetime,
    data: dict[str, Any],
) -> bytes:
    """The JSON body sent for an event: the same bytes on every attempt."""
    document = {
        "id": event_id,
        "type": event_type,
        "organisation_id": organisation_id,
        "created_at": to_rfc3339(created_at),
        "data": data,
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={digest.hexdigest()}"


def verify(secret: str, timestamp: str, body: bytes, header: str) -> bool:
    """What a receiver does (used by our tests): constant-time comparison."""
    try:
        expected = signature(secret, int(timestamp), body)
    except ValueError:
        return False
    return hmac.compare_digest(expected, header)


def backoff_seconds(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Delay before the attempt after ``attempt`` (1-based): exponential, capped, with
    "equal jitter" (between half and all of it), so failing receivers are not hit in
    lockstep by every worker."""
    ceiling: float = min(cap, base * 2.0 ** (attempt - 1))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)
