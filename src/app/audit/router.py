"""GET /v1/audit (the trail, filtered and paginated) and GET /v1/audit/head."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.audit.queries import (
    AUDIT_ENDPOINT,
    AuditFilters,
    entries_out,
    list_entries,
    read_head,
)
from src.app.audit.schemas import AuditEntryOut, AuditHeadOut
from src.app.audit.sealer import seal_pending
from src.app.core.audit_model import AuditEntry
from src.app.core.database import get_database, get_db
from src.app.core.errors import ApiError, FieldError, error_responses
from src.app.core.pagination import Page, PageParams, page_params, paginate
from src.app.core.schemas import DateTimeInput
from src.app.core.tenancy import Principal, Role
from src.app.identity.dependencies import require_role

router = APIRouter(prefix="/audit", tags=["audit"])

require_auditor = require_role(Role.admin, Role.viewer)
OPPORTUNISTIC_SEAL_LIMIT = 1000


@router.get(
    "",
    response_model=Page[AuditEntryOut],
    summary="The organisation's audit trail, newest first (admin, viewer)",
    description=(
        "Every recorded change of the caller's organisation, newest first (`created_at`, "
        "then `id`, descending). Filters combine with AND. Each entry carries its `chain` "
        "link once sealed. Technicians get 403."
    ),
    responses=error_responses(400),
)
async def get_audit(
    subject_type: str | None = Query(None, max_length=64, description="e.g. `test_session`."),
    subject_id: str | None = Query(None, max_length=128, description="The subject's id."),
    actor_id: uuid.UUID | None = Query(None, description="Only changes made by this user."),
    since: DateTimeInput | None = Query(
        None, alias="from", description="Only entries created at or after this time."
    ),
    until: DateTimeInput | None = Query(
        None, alias="to", description="Only entries created before this time."
    ),
    params: PageParams = Depends(page_params),
    principal: Principal = Depends(require_auditor),
    db: AsyncSession = Depends(get_db),
) -> Page[AuditEntryOut]:
    for name, value in (("from", since), ("to", until)):
        if value is not None and value.tzinfo is None:
            detail = "needs a time zone (e.g. a trailing Z)"
            raise ApiError(
                422, f"{name} {detail}", errors=[FieldError(parameter=name, detail=detail)]
            )
    if since is not None and until is not None and since >= until:
        detail = "from must be before to"
        raise ApiError(422, detail, errors=[FieldError(parameter="from", detail=detail)])
    filters = AuditFilters(subject_type, subject_id, actor_id, since, until)
    rows, next_cursor = await paginate(
        db,
        list_entries(principal.organisation_id, filters),
        AuditEntry,
        params,
        endpoint=AUDIT_ENDPOINT,
        filters=filters.binding(),
        organisation_id=principal.organisation_id,
    )
    return Page[AuditEntryOut](data=await entries_out(db, rows), next_cursor=next_cursor)


@router.get(
    "/head",
    response_model=AuditHeadOut,
    summary="The head of the organisation's hash chain, for external anchoring (admin, viewer)",
    description=(
        "Position and hash of the last sealed entry. Record the pair outside FireMode "
        "(an email, a ledger, a notary): `firemode audit verify --anchor POSITION:HASH` "
        "later proves the chain still passes through it. Entries are sealed within "
        "seconds of their commit; this call seals what is ready (bounded) before "
        "answering, and `unsealed` counts the rest."
    ),
)
async def get_audit_head(
    request: Request,
    principal: Principal = Depends(require_auditor),
    db: AsyncSession = Depends(get_db),
) -> AuditHeadOut:
    async with get_database(request).sessionmaker() as sealing:
        await seal_pending(sealing, limit=OPPORTUNISTIC_SEAL_LIMIT)
    return await read_head(db, principal.organisation_id)
