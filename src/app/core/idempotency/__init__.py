"""Idempotency keys for POST routes (IETF httpapi "Idempotency-Key"); docs/idempotency.md.

The parts: ``headers`` (the key's syntax), ``fingerprint`` (what "the same request"
means), ``store`` (the table), ``machine`` (claim, run, store, replay) and
``dependencies`` (what routes declare).
"""

from src.app.core.idempotency.dependencies import (
    idempotency_optional,
    idempotency_required,
    required_idempotency_key,
)
from src.app.core.idempotency.fingerprint import fingerprint_of, request_fingerprint
from src.app.core.idempotency.headers import (
    IDEMPOTENCY_HEADER,
    REPLAYED_HEADER,
    parse_idempotency_key,
)
from src.app.core.idempotency.machine import (
    IDEMPOTENCY_ERROR_STATUSES,
    Caller,
    Claim,
    IdempotentRequest,
    claim_of,
    in_flight,
    key_reused,
    replay,
    stored_headers,
)
from src.app.core.responses import json_response
from src.app.core.transactions import begin_write

__all__ = [
    "IDEMPOTENCY_ERROR_STATUSES",
    "IDEMPOTENCY_HEADER",
    "REPLAYED_HEADER",
    "Caller",
    "Claim",
    "IdempotentRequest",
    "begin_write",
    "claim_of",
    "fingerprint_of",
    "idempotency_optional",
    "idempotency_required",
    "in_flight",
    "json_response",
    "key_reused",
    "parse_idempotency_key",
    "replay",
    "request_fingerprint",
    "required_idempotency_key",
    "stored_headers",
]
