"""Defects, their deadlines, and the evaluation of a session's results.

Admins and technicians raise and move defects; viewers read. Another organisation's
defect, building, asset or session is a 404.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy import and_, not_, select
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.buildings.models import Asset, Building
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
from src.app.core.tenancy import Principal, get_owned, scoped
from src.app.core.transactions import begin_write
from src.app.defects import service
from src.app.defects.evaluation import evaluate_session
from src.app.defects.lifecycle import DefectStatus
from src.app.defects.models import Defect
from src.app.defects.schemas import (
    DeadlinesBody,
    DeadlinesOut,
    DefectCreate,
    DefectDetail,
    DefectEventOut,
    DefectOut,
    DefectUpdate,
    EvaluationOut,
)
from src.app.identity.dependencies import require_admin, require_reader, require_writer
from src.app.rules.checklist import Severity
from src.app.rules.service import find_rule, rule_versions
from src.app.sessions.models import TestSession

router = APIRouter(tags=["defects"])
DEFECTS_ENDPOINT = "GET /v1/defects"

LIFECYCLE_DESCRIPTION = """
Moves the status one step along the life cycle, with a `note` kept in the history, and/or
edits `severity`, `remark` and `evidence_ids` (each edit is kept in the history too):

| from | allowed next statuses |
| --- | --- |
| open | acknowledged, cancelled |
| acknowledged | quoted, repair_scheduled, cancelled |
| quoted | repair_scheduled, cancelled |
| repair_scheduled | repaired, cancelled |
| repaired | verified, repair_scheduled (verification failed), cancelled |
| verified | closed |
| closed, cancelled | none (final) |

* **409**: an illegal move (the message names the allowed next statuses), or any change to
  a closed or cancelled defect. Sending the current status is a no-op.
* **403**: a viewer; `cancelled` by anyone but an admin; `verified` by the person who
  marked it `repaired` (verification needs a different person).
* **422**: `cancelled` without a `note` (the reason).
"""


async def _defect_detail(db: AsyncSession, defect: Defect) -> DefectDetail:
    now = utc_now()
    events = await service.history(db, defect.id)
    return DefectDetail(
        **DefectOut.of(defect, now).model_dump(),
        history=[DefectEventOut.of(e) for e in events],
    )


async def _links(db: AsyncSession, body: DefectCreate, principal: Principal) -> dict[str, object]:
    """Checks the building, asset, session and rule the new defect points at."""
    building_id = body.building_id
    if body.asset_id is not None:
        asset = await get_owned(db, Asset, body.asset_id, principal, what="Asset")
        if building_id is not None and building_id != asset.building_id:
            raise ApiError(
                422,
                "The asset is not in the given building",
                errors=[FieldError(pointer="/asset_id", detail="not in building_id")],
            )
        building_id = asset.building_id
    if building_id is None:
        detail = "give building_id or asset_id"
        raise ApiError(
            422,
            f"A defect needs a building: {detail}",
            errors=[FieldError(pointer="/building_id", detail=detail)],
        )
    await get_owned(db, Building, building_id, principal, what="Building")
    links: dict[str, object] = {"building_id": building_id, "asset_id": body.asset_id}
    if body.session_id is not None:
        found = await get_owned(db, TestSession, body.session_id, principal, what="Test session")
        if found.building_id != building_id:
            raise ApiError(
                422,
                "The test session is not of the defect's building",
                errors=[FieldError(pointer="/session_id", detail="another building")],
            )
        links["session_id"] = found.id
    if body.rule_code is not None:
        rule = await find_rule(db, principal.organisation_id, body.rule_code)
        if rule is None:
            raise ApiError(404, f"Rule {body.rule_code} does not exist")
        latest = next(
            v for v in await rule_versions(db, rule.id) if v.version == rule.latest_version
        )
        links.update(rule_code=rule.code, rule_version=latest.version, rule_version_id=latest.id)
        if body.item_key is not None:
            if body.item_key not in {i["key"] for i in latest.checklist}:
                raise ApiError(
                    422,
                    f"Rule {rule.code} has no item {body.item_key}",
                    errors=[FieldError(pointer="/item_key", detail="unknown item")],
                )
            links["item_key"] = body.item_key
    elif body.item_key is not None:
        raise ApiError(
            422,
            "item_key needs rule_code",
            errors=[FieldError(pointer="/item_key", detail="needs rule_code")],
        )
    return links


@router.post(
    "/defects",
    status_code=201,
    response_model=DefectOut,
    summary="Raise a defect by hand (admin, technician)",
    description=(
        "Give the asset (its building follows) or the building; optionally the session that "
        "found it and the rule (its latest version) and checklist item it relates to. The "
        "response deadline is fixed now from your organisation's deadline for the severity. "
        "Writes a `defect.raised` event. Honours `Idempotency-Key`."
    ),
    responses=error_responses(*IDEMPOTENCY_ERROR_STATUSES),
)
async def create_defect(
    body: DefectCreate,
    principal: Principal = Depends(require_writer),
    db: AsyncSession = Depends(get_db),
    idempotency: IdempotentRequest = Depends(idempotency_optional),
) -> Response:
    async def work() -> Response:
        links = await _links(db, body, principal)
        now = utc_now()
        defect = await service.raise_defect(
            db,
            organisation_id=principal.organisation_id,
            severity=body.severity,
            remark=body.remark,
            source="manual",
            actor_id=principal.user_id,
            now=now,
            evidence_ids=list(body.evidence_ids),
            **links,  # type: ignore[arg-type]
        )
        return json_response(
            DefectOut.of(defect, now),
            status_code=201,
            headers={"Location": f"/v1/defects/{defect.id}"},
        )

    return await idempotency.run(principal, work)


@router.get(
    "/defects",
    response_model=Page[DefectOut],
    summary="List defects, newest first",
    responses=error_responses(400),
)
async def list_defects(
    building_id: uuid.UUID | None = Query(None, description="Only this building's defects."),
    asset_id: uuid.UUID | None = Query(None, description="Only this asset's defects."),
    session_id: uuid.UUID | None = Query(None, description="Only defects of this session."),
    status: DefectStatus | None = Query(None, description="Only defects in this status."),
    severity: Severity | None = Query(None, description="Only defects of this severity."),
    overdue: bool | None = Query(
        None,
        description="true: only defects past their response deadline and still open; "
        "false: only the others.",
    ),
    params: PageParams = Depends(page_params),
    principal: Principal = Depends(require_reader),
    db: AsyncSession = Depends(get_db),
) -> Page[DefectOut]:
    statement = scoped(select(Defect), Defect, principal)
    equal = {
        "building_id": building_id,
        "asset_id": asset_id,
        "session_id": session_id,
        "status": status.value if status else None,
        "severity": severity.value if severity else None,
    }
    for name, value in equal.items():
        if value is not None:
            statement = statement.where(getattr(Defect, name) == value)
    now = utc_now()
    if overdue is not None:
        condition = and_(
            Defect.status == DefectStatus.open.value,
            Defect.response_due_at.is_not(None),
            Defect.response_due_at < now,
        )
        statement = statement.where(condition if overdue else not_(condition))
    rows, next_cursor = await paginate(
        db,
        statement,
        Defect,
        params,
        endpoint=DEFECTS_ENDPOINT,
        filters={**{k: str(v) if v else None for k, v in equal.items()}, "overdue": overdue},
        organisation_id=principal.organisation_id,
    )
    return Page[DefectOut](data=[DefectOut.of(d, now) for d in rows], next_cursor=next_cursor)


@router.get(
    "/defects/deadlines",
    response_model=DeadlinesOut,
    summary="Your organisation's response deadline per severity, in hours",
    description="Null: no deadline. Defaults: critical 24 hours, the others none.",
)
async def get_deadlines(
    principal: Principal = Depends(require_reader),
    db: AsyncSession = Depends(get_db),
) -> DeadlinesOut:
    return DeadlinesOut(**await service.deadlines(db, principal.organisation_id))


@router.put(
    "/defects/deadlines",
    response_model=DeadlinesOut,
    summary="Set the response deadline per severity (admin)",
    description=(
        "Every severity must be given (hours, 1 to 8784, or null for none). Applies to "
        "defects raised from now on; existing defects keep the deadline they were raised with."
    ),
)
async def put_deadlines(
    body: DeadlinesBody,
    principal: Principal = Depends(require_admin),
    db: AsyncSession = Depends(get_db),
) -> DeadlinesOut:
    await begin_write(db)
    await service.set_deadlines(db, principal.organisation_id, body.model_dump())
    await db.commit()
    return DeadlinesOut(**await service.deadlines(db, principal.organisation_id))


@router.get(
    "/defects/{defect_id}",
    response_model=DefectDetail,
    summary="Get a defect with its history",
)
async def get_defect(
    defect_id: uuid.UUID,
    principal: Principal = Depends(require_reader),
    db: AsyncSession = Depends(get_db),
) -> DefectDetail:
    defect = await get_owned(db, Defect, defect_id, principal, what="Defect")
    return await _defect_detail(db, defect)


@router.patch(
    "/defects/{defect_id}",
    response_model=DefectDetail,
    summary="Move a defect along its life cycle and/or edit it (admin, technician)",
    description=LIFECYCLE_DESCRIPTION,
    responses=error_responses(409),
)
async def update_defect(
    defect_id: uuid.UUID,
    body: DefectUpdate,
    principal: Principal = Depends(require_writer),
    db: AsyncSession = Depends(get_db),
) -> DefectDetail:
    await begin_write(db)
    defect = await get_owned(db, Defect, defect_id, principal, what="Defect", for_update=True)
    changes = body.model_dump(exclude_unset=True)
    note = changes.pop("note", None)
    await service.change_defect(db, defect, principal, changes=changes, note=note, now=utc_now())
    await db.commit()
    return await _defect_detail(db, defect)


@router.get(
    "/tests/sessions/{session_id}/evaluation",
    response_model=EvaluationOut,
    tags=["test sessions"],
    summary="Evaluate a session's checklist answers against its rules",
    description=(
        "Answers live in the results document at "
        "`/checklists/{asset_id}/{rule_code}/{item_key}`. Evaluated against the rule "
        "versions published when the session started (`rules_as_of`); per asset and rule, "
        "each item's outcome (pass, fail, missing, out_of_limits) and the defects that "
        "completing the session raises. See docs/api/rules.md."
    ),
)
async def get_evaluation(
    session_id: uuid.UUID,
    principal: Principal = Depends(require_reader),
    db: AsyncSession = Depends(get_db),
) -> EvaluationOut:
    test_session = await get_owned(db, TestSession, session_id, principal, what="Test session")
    return EvaluationOut.of(await evaluate_session(db, test_session, now=utc_now()))
