"""Results sync: CRDT submission with idempotency, and delta pull."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.routing import APIRoute
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from src.app.core.database import get_db
from src.app.core.errors import ApiError, error_responses
from src.app.core.idempotency import IDEMPOTENCY_ERROR_STATUSES, required_idempotency_key
from src.app.core.idempotency.headers import header_key
from src.app.core.metrics import MERGED_OPS, MERGES
from src.app.core.responses import json_response
from src.app.core.settings import Settings
from src.app.core.tenancy import Principal
from src.app.identity.dependencies import (
    PendingRevocationCheck,
    require_reader,
    require_writer_checking_revocation_later,
    writer_pending_revocation_check,
)
from src.app.results.documents import read_results
from src.app.results.schemas import ResultsOut, ResultsSubmission, ResultsSubmitted
from src.app.results.service import PREFERENCE_APPLIED, submit_results

router = APIRouter(prefix="/tests/sessions", tags=["results"])

DEFAULT_DELTA_LIMIT = 1000
MAX_DELTA_LIMIT = 10_000
MAX_VERSION = 2**63 - 1  # versions are BIGINT


SUBMIT_DESCRIPTION = """
Merges a batch of `set`/`delete` changes into the session's results document, a
last-writer-wins tree keyed by JSON Pointer and ordered by `(ts, device_id, op_id)`.
Accepted whole or refused whole. Ops already received (same `op_id`, or same
`(ts, device, path, op, value)` for ops without one) are counted in `duplicates` and not
applied again. An unknown session id is created as a `draft` in the caller's
organisation. Ops without `ts` are stamped by the server's hybrid logical clock; without
`device_id` they belong to device `user:<user id>`. Requires `Idempotency-Key`.

With `Prefer: return=minimal` (RFC 7240) the body omits `document` and the response
carries `Preference-Applied: return=minimal`: a client that pulls deltas then pays
nothing for a large document. Refusals (422): more ops than `FIREMODE_MAX_SESSION_OPS`
in the session's log, more than `FIREMODE_MAX_SESSION_BYTES` of paths and values in it,
or a state larger than `FIREMODE_MAX_DOCUMENT_BYTES`.
"""


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class SubmitRoute(APIRoute):
    """``POST .../results``, the busiest route: a request that passes every check of the
    declared signature below (a writer's valid token, a well-formed key, a canonical
    session id, a valid body) is served without FastAPI's dependency machinery, which
    cost more than the rest of the request together. Anything else takes the declared
    path, which answers it exactly as FastAPI always did; the declared signature is also
    what the OpenAPI document says."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        declared = super().get_route_handler()

        async def handler(request: Request) -> Response:
            lean = await _lean_submit(request)
            return lean if lean is not None else await declared(request)

        return handler


async def _lean_submit(request: Request) -> Response | None:
    raw_id: str = request.path_params.get("session_id", "")
    if _CANONICAL_UUID.fullmatch(raw_id) is None:
        return None
    caller = await writer_pending_revocation_check(request)
    if caller is None:
        return None
    try:
        key = header_key(request, required=True)
        body = ResultsSubmission.model_validate(await request.json())
    except (ApiError, ValidationError, ValueError):
        return None
    assert key is not None  # required=True raises instead
    return await _submit(request, caller, uuid.UUID(raw_id), body, key)


async def _submit(
    request: Request,
    caller: PendingRevocationCheck,
    session_id: uuid.UUID,
    body: ResultsSubmission,
    key: str,
) -> Response:
    done = await submit_results(request, caller, session_id, body, key)
    if done.response.status_code < 400 and done.applied + done.duplicates:
        # Counted once committed, never for replays.
        if done.applied:
            MERGES.labels("state").inc()
        MERGED_OPS.labels("applied").inc(done.applied)
        MERGED_OPS.labels("duplicate").inc(done.duplicates)
    return done.response


async def submit(
    session_id: uuid.UUID,
    body: ResultsSubmission,
    request: Request,
    # The hot path: the revocation check is made inside the write's own statement.
    caller: PendingRevocationCheck = Depends(require_writer_checking_revocation_later),
    idempotency_key: str = Depends(required_idempotency_key),
    prefer: str | None = Header(
        default=None,
        description="`return=minimal` (RFC 7240): answer without `document`",
        examples=["return=minimal"],
    ),
) -> Response:
    return await _submit(request, caller, session_id, body, idempotency_key)


router.add_api_route(
    "/{session_id}/results",
    submit,
    methods=["POST"],
    route_class_override=SubmitRoute,
    name="submit_results",
    response_model=ResultsSubmitted,
    response_model_exclude_unset=True,
    summary="Submit result changes (CRDT merge)",
    description=SUBMIT_DESCRIPTION,
    responses={
        **error_responses(404, *IDEMPOTENCY_ERROR_STATUSES),
        200: {
            "description": "Merged (or replayed, with `Idempotent-Replayed: true`)",
            "headers": {
                PREFERENCE_APPLIED: {
                    "description": "`return=minimal` when the request asked for it",
                    "schema": {"type": "string"},
                }
            },
        },
    },
)


@router.get(
    "/{session_id}/results",
    name="read_results",
    response_model=ResultsOut,
    summary="Read the results document, optionally with the ops after a version",
    description=(
        "Without `since`: `{session_id, version, document}`. With `since`: also `ops`, "
        "the ops accepted after that version, oldest first, at most `limit` of them and "
        "about `FIREMODE_MAX_DELTA_BYTES` (4 MiB) of values (`value` is absent for "
        "deletes). When more remain, `next_since` gives the `since` of the next page; "
        "it is `null` on the last page. A device far behind may simply take `document` "
        "instead of paging through the ops."
    ),
)
async def read(
    session_id: uuid.UUID,
    request: Request,
    principal: Principal = Depends(require_reader),
    db: AsyncSession = Depends(get_db),
    since: int | None = Query(
        default=None, ge=0, le=MAX_VERSION, description="Last version the client has"
    ),
    limit: int = Query(
        default=DEFAULT_DELTA_LIMIT,
        ge=1,
        le=MAX_DELTA_LIMIT,
        description="Most ops to return with `since`",
    ),
) -> Response:
    settings: Settings = request.app.state.settings
    out = await read_results(
        db,
        principal,
        session_id,
        since=since,
        limit=limit,
        max_delta_bytes=settings.max_delta_bytes,
    )
    # exclude_unset: no `ops` without `since`, and no `value` on a delete.
    return json_response(out, exclude_unset=True)
