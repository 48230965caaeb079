"""Results sync (FR-4): CRDT submission with idempotency, and delta pull."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from src.app.core.database import get_db
from src.app.core.errors import error_responses
from src.app.core.idempotency import (
    IDEMPOTENCY_ERROR_STATUSES,
    IdempotentRequest,
    idempotency_required,
)
from src.app.core.metrics import MERGED_OPS, MERGES
from src.app.core.responses import json_response
from src.app.core.settings import Settings
from src.app.core.tenancy import Principal
from src.app.identity.dependencies import require_reader, require_writer
from src.app.results.schemas import ResultsOut, ResultsSubmission, ResultsSubmitted
from src.app.results.service import Submitted, read_results, submit_results

router = APIRouter(prefix="/tests/sessions", tags=["results"])

DEFAULT_DELTA_LIMIT = 1000
MAX_DELTA_LIMIT = 10_000
MAX_VERSION = 2**63 - 1  # versions are BIGINT


@router.post(
    "/{session_id}/results",
    response_model=ResultsSubmitted,
    summary="Submit result changes (CRDT merge)",
    description=(
        "Merges a batch of `set`/`delete` changes into the session's results document, "
        "a last-writer-wins tree keyed by JSON Pointer and ordered by `(ts, device_id, "
        "op_id)`. Accepted whole or refused whole. Ops already received (same `op_id`, "
        "or same `(ts, device, path, op, value)` for ops without one) are counted in "
        "`duplicates` and not applied again. An unknown session id is created as a "
        "`draft` in the caller's organisation. Ops without `ts` are stamped by the "
        "server's hybrid logical clock; without `device_id` they belong to device "
        "`user:<user id>`. Requires `Idempotency-Key`."
    ),
    responses=error_responses(*IDEMPOTENCY_ERROR_STATUSES),
)
async def submit(
    session_id: uuid.UUID,
    body: ResultsSubmission,
    request: Request,
    principal: Principal = Depends(require_writer),
    session: AsyncSession = Depends(get_db),
    idempotency: IdempotentRequest = Depends(idempotency_required),
) -> Response:
    settings: Settings = request.app.state.settings
    outcome: list[Submitted] = []

    async def work() -> Response:
        submitted = await submit_results(session, principal, session_id, body, settings)
        outcome.append(submitted)
        return json_response(
            ResultsSubmitted(
                session_id=submitted.session_id,
                version=submitted.version,
                applied=submitted.applied,
                duplicates=submitted.duplicates,
                server_ts=submitted.server_ts,
                document=submitted.document,
            )
        )

    response = await idempotency.run(principal, work)
    if outcome and response.status_code < 400:  # counted once committed, never for replays
        done = outcome[0]
        if done.mode != "none":
            MERGES.labels(done.mode).inc()
        MERGED_OPS.labels("applied").inc(done.applied)
        MERGED_OPS.labels("duplicate").inc(done.duplicates)
    return response


@router.get(
    "/{session_id}/results",
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
    session: AsyncSession = Depends(get_db),
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
        session,
        principal,
        session_id,
        since=since,
        limit=limit,
        max_delta_bytes=settings.max_delta_bytes,
    )
    # exclude_unset: no `ops` without `since`, and no `value` on a delete.
    return json_response(out, exclude_unset=True)
