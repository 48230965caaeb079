"""Test sessions: one visit to a building to service its equipment.

Admins and technicians create and update sessions; viewers read. Sessions are scoped to the
caller's organisation: another organisation's session is a 404.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.buildings.models import Building
from src.app.core import audit
from src.app.core.clock import utc_now
from src.app.core.database import get_db
from src.app.core.errors import ApiError, FieldError, error_responses
from src.app.core.idempotency import (
    IDEMPOTENCY_ERROR_STATUSES,
    IdempotentRequest,
    idempotency_optional,
)
from src.app.core.pagination import Page, PageParams, page_params, paginate
from src.app.core.responses import json_response
from src.app.core.schemas import CalendarDate
from src.app.core.tenancy import Principal, get_owned
from src.app.core.transactions import begin_write
from src.app.identity.dependencies import require_reader, require_writer
from src.app.sessions.hooks import run_completion_hooks, run_creation_hooks
from src.app.sessions.models import SessionStatus, TestSession
from src.app.sessions.queries import SESSIONS_ENDPOINT, SessionFilters, list_sessions
from src.app.sessions.schemas import SessionCreate, SessionOut, SessionUpdate
from src.app.sessions.transitions import transition_refusal

router = APIRouter(prefix="/tests/sessions", tags=["test sessions"])

CREATE_DESCRIPTION = """
Creates a test session in `draft` status. The client may choose the `id` (offline devices
create sessions before they can reach the server), which makes the request safe to retry:

* **201**: the session was created by this request. This includes adopting the
  placeholder that results sync creates when a session's results arrive before the session
  (`building_id` null): its building, name, frequency and schedule are filled in from this
  body, and its results are kept.
* **200**: a session with this `id` already exists in your organisation with exactly these
  values (`building_id`, `session_name`, `frequency`, `scheduled_for`; omitted means null);
  it is returned unchanged.
* **409**: the `id` exists with other values (for instance after a later PATCH: GET it
  instead), or the `id` is not available (the answer says nothing more about it).
* **404**: `building_id` is not one of your organisation's buildings.

A concurrent create of the same `id` (or results arriving for it at the same instant) may
get 409 with `retryable: true`; the retry then gets 200 or 201 as above. Also honours
`Idempotency-Key`.
"""

UPDATE_DESCRIPTION = """
Changes the name, schedule, frequency or building, and moves the status one step along
`draft → scheduled → in_progress → completed`. Sending the current status is a no-op.
An illegal transition is 409, and the message names the allowed next status. A session
leaves `draft` only once it has a building. A completed session is locked: every PATCH
(and every results submission) is 409. Moving to `in_progress` records `started_at` (the
rule versions published by then apply to its evaluation); moving to `completed` records
`completed_at` and, in the same transaction, raises the defects its evaluation implies.
"""


async def _find_session_for_create(db: AsyncSession, session_id: uuid.UUID) -> TestSession | None:
    # Deliberately not scoped: ids are global, and a collision with another organisation's
    # id must be refused (without saying anything about that session).
    statement = select(TestSession).where(TestSession.id == session_id).with_for_update()
    found: TestSession | None = (await db.execute(statement)).scalar_one_or_none()
    return found


async def _record_created(
    db: AsyncSession, principal: Principal, created: TestSession, *, adopted: bool
) -> None:
    await audit.record_by(
        db,
        principal,
        "test_session.created",
        "test_session",
        created.id,
        {
            "building_id": created.building_id,
            "session_name": created.session_name,
            "frequency": created.frequency,
            "scheduled_for": created.scheduled_for,
            "status": created.status,
            # The placeholder results sync made, completed by this request.
            "adopted_placeholder": adopted,
        },
    )


async def _create(
    body: SessionCreate, session_id: uuid.UUID, principal: Principal, db: AsyncSession
) -> tuple[TestSession, int]:
    """The session and the status to answer with; writes are flushed, not committed."""
    await get_owned(db, Building, body.building_id, principal, what="Building")
    existing = await _find_session_for_create(db, session_id)
    if existing is None:
        created = TestSession(
            id=session_id,
            organisation_id=principal.organisation_id,
            building_id=body.building_id,
            session_name=body.session_name,
            frequency=body.frequency.value if body.frequency else None,
            scheduled_for=body.scheduled_for,
            status=SessionStatus.draft.value,
            created_by=principal.user_id,
        )
        db.add(created)
        await db.flush()
        await _record_created(db, principal, created, adopted=False)
        await run_creation_hooks(db, created, body.routine_pairs())
        return created, 201
    if existing.organisation_id != principal.organisation_id:
        raise ApiError(409, f"The test session id {session_id} is not available; choose another")
    if existing.building_id is None:
        # The placeholder results sync made: this POST completes it.
        existing.building_id = body.building_id
        existing.session_name = body.session_name
        existing.frequency = body.frequency.value if body.frequency else None
        existing.scheduled_for = body.scheduled_for
        if existing.created_by is None:
            existing.created_by = principal.user_id
        await db.flush()
        await _record_created(db, principal, existing, adopted=True)
        await run_creation_hooks(db, existing, body.routine_pairs())
        return existing, 201
    if body.same_as(existing):
        return existing, 200
    raise ApiError(
        409,
        f"Test session {session_id} already exists with other values; "
        "GET it, or create the new session with another id",
    )


@router.post(
    "",
    status_code=201,
    response_model=SessionOut,
    summary="Create a test session (admin, technician); the client may choose its id",
    description=CREATE_DESCRIPTION,
    responses={
        200: {"model": SessionOut, "description": "The session already existed, identical"},
        **error_responses(*IDEMPOTENCY_ERROR_STATUSES),
    },
)
async def create_session(
    body: SessionCreate,
    principal: Principal = Depends(require_writer),
    db: AsyncSession = Depends(get_db),
    idempotency: IdempotentRequest = Depends(idempotency_optional),
) -> Response:
    session_id = body.id or uuid.uuid4()

    async def work() -> Response:
        try:
            found, status = await _create(body, session_id, principal, db)
        except IntegrityError as exc:
            # Another request inserted this id (or results sync its placeholder) between
            # our look-up and our insert, or the building was deleted: run() rolls back.
            raise ApiError(
                409,
                f"Test session {session_id} conflicts with a concurrent change; retry",
                retryable=True,
            ) from exc
        headers = {"Location": f"/v1/tests/sessions/{found.id}"} if status == 201 else None
        return json_response(SessionOut.of(found), status_code=status, headers=headers)

    return await idempotency.run(principal, work)


@router.get(
    "",
    response_model=Page[SessionOut],
    summary="List test sessions, newest first",
    description=(
        "Newest first (`created_at`, then `id`, descending). Filters combine with AND; "
        "`date_from` and `date_to` filter on `scheduled_for`, both inclusive, and leave out "
        "sessions with no scheduled day."
    ),
    responses=error_responses(400),
)
async def get_sessions(
    status: list[SessionStatus] | None = Query(
        None, description="Only sessions in one of these statuses (repeat the parameter)."
    ),
    building_id: uuid.UUID | None = Query(None, description="Only sessions of this building."),
    date_from: CalendarDate | None = Query(
        None, description="Only sessions scheduled on or after this day (scheduled_for)."
    ),
    date_to: CalendarDate | None = Query(
        None, description="Only sessions scheduled on or before this day (scheduled_for)."
    ),
    params: PageParams = Depends(page_params),
    principal: Principal = Depends(require_reader),
    db: AsyncSession = Depends(get_db),
) -> Page[SessionOut]:
    if date_from is not None and date_to is not None and date_from > date_to:
        detail = "date_from must not be after date_to"
        raise ApiError(422, detail, errors=[FieldError(parameter="date_from", detail=detail)])
    filters = SessionFilters.normalised(status, building_id, date_from, date_to)
    rows, next_cursor = await paginate(
        db,
        list_sessions(principal, filters),
        TestSession,
        params,
        endpoint=SESSIONS_ENDPOINT,
        filters=filters.binding(),
        organisation_id=principal.organisation_id,
    )
    return Page[SessionOut](data=[SessionOut.of(s) for s in rows], next_cursor=next_cursor)


@router.get("/{session_id}", response_model=SessionOut, summary="Get a test session")
async def get_test_session(
    session_id: uuid.UUID,
    principal: Principal = Depends(require_reader),
    db: AsyncSession = Depends(get_db),
) -> SessionOut:
    found = await get_owned(db, TestSession, session_id, principal, what="Test session")
    return SessionOut.of(found)


@router.patch(
    "/{session_id}",
    response_model=SessionOut,
    summary="Update a test session or move its status (admin, technician)",
    description=UPDATE_DESCRIPTION,
    responses=error_responses(409),
)
async def update_session(
    session_id: uuid.UUID,
    body: SessionUpdate,
    request: Request,
    principal: Principal = Depends(require_writer),
    db: AsyncSession = Depends(get_db),
) -> SessionOut:
    await begin_write(db)
    test_session = await get_owned(
        db, TestSession, session_id, principal, what="Test session", for_update=True
    )
    current = SessionStatus(test_session.status)
    if current is SessionStatus.completed:
        raise ApiError(
            409,
            f"Test session {session_id} is completed and locked; it can no longer change "
            "(no status follows 'completed')",
        )
    changes = body.model_dump(exclude_unset=True)
    if "building_id" in changes:
        await get_owned(db, Building, changes["building_id"], principal, what="Building")
    if "status" in changes:
        target: SessionStatus = changes["status"]
        refusal = transition_refusal(current, target)
        if refusal is not None:
            raise ApiError(409, refusal)
        building_after = changes.get("building_id", test_session.building_id)
        if target is not SessionStatus.draft and building_after is None:
            raise ApiError(409, "A test session needs a building before it can leave 'draft'")
        changes["status"] = target.value
    if changes.get("frequency") is not None:
        changes["frequency"] = changes["frequency"].value
    completing = changes.get("status") == SessionStatus.completed.value
    if changes.get("status") == SessionStatus.in_progress.value and current is not (
        SessionStatus.in_progress
    ):
        changes["started_at"] = utc_now()
    elif completing:
        changes["completed_at"] = utc_now()
    changed = {k: v for k, v in changes.items() if getattr(test_session, k) != v}
    for name, value in changes.items():
        setattr(test_session, name, value)
    if changed:
        # One entry per request: a status change is what an auditor looks for.
        status_changed = "status" in changed
        await audit.record_by(
            db,
            principal,
            "test_session.status_changed" if status_changed else "test_session.updated",
            "test_session",
            test_session.id,
            {
                **({"from": current.value, "to": changed["status"]} if status_changed else {}),
                "changes": changed,
            },
        )
    if completing:
        await db.flush()
        await run_completion_hooks(db, test_session, principal, request.app.state.settings)
    try:
        await db.commit()
    except IntegrityError as exc:  # the new building was deleted meanwhile
        await db.rollback()
        raise ApiError(404, f"Building {changes.get('building_id')} does not exist") from exc
    return SessionOut.of(test_session)
