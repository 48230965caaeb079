"""The rule catalogue: what each routine checks (GET for everyone, publishing for admins).

The shipped catalogue is visible to every organisation and read-only; an organisation's
admins publish their own rules and versions, which only that organisation sees.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.buildings.models import AssetType
from src.app.core import audit
from src.app.core.database import get_db
from src.app.core.errors import ApiError, FieldError, error_responses
from src.app.core.idempotency import (
    IDEMPOTENCY_ERROR_STATUSES,
    IdempotentRequest,
    idempotency_optional,
)
from src.app.core.pagination import Page, PageParams, page_params, paginate
from src.app.core.responses import json_response
from src.app.core.tenancy import Principal
from src.app.identity.dependencies import require_admin, require_reader
from src.app.rules.checklist import parse_version
from src.app.rules.frequency import Frequency
from src.app.rules.models import Rule
from src.app.rules.schemas import (
    RuleCreate,
    RuleDetail,
    RuleOut,
    RuleVersionIn,
    RuleVersionOut,
)
from src.app.rules.service import (
    add_version,
    find_rule,
    is_reserved_code,
    rule_versions,
    visible_rules,
)

router = APIRouter(prefix="/rules", tags=["rules"])
RULES_ENDPOINT = "GET /v1/rules"


def _rule_not_found(code: str) -> ApiError:
    return ApiError(404, f"Rule {code} does not exist")


async def _visible_rule(db: AsyncSession, principal: Principal, code: str) -> Rule:
    rule = await find_rule(db, principal.organisation_id, code)
    if rule is None:
        raise _rule_not_found(code)
    return rule


@router.get(
    "",
    response_model=Page[RuleOut],
    summary="List rules (the shipped catalogue and your organisation's), newest first",
    responses=error_responses(400),
)
async def list_rules(
    asset_type: AssetType | None = Query(None, description="Only rules for this asset type."),
    frequency: Frequency | None = Query(None, description="Only rules of this frequency."),
    standard: str | None = Query(
        None,
        max_length=64,
        description="Only rules whose latest version cites exactly this standard, e.g. "
        "`AS 1851-2012` or `AS/NZS 2293.2:2019`.",
    ),
    params: PageParams = Depends(page_params),
    principal: Principal = Depends(require_reader),
    db: AsyncSession = Depends(get_db),
) -> Page[RuleOut]:
    statement = visible_rules(principal.organisation_id)
    if asset_type is not None:
        statement = statement.where(Rule.asset_type == asset_type.value)
    if frequency is not None:
        statement = statement.where(Rule.frequency == frequency.value)
    if standard is not None:
        statement = statement.where(Rule.standard == standard)
    rows, next_cursor = await paginate(
        db,
        statement,
        Rule,
        params,
        endpoint=RULES_ENDPOINT,
        filters={
            "asset_type": asset_type.value if asset_type else None,
            "frequency": frequency.value if frequency else None,
            "standard": standard,
        },
        organisation_id=principal.organisation_id,
    )
    return Page[RuleOut](data=[RuleOut.of(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/{code}",
    response_model=RuleDetail,
    summary="Get a rule with every version",
)
async def get_rule(
    code: str,
    principal: Principal = Depends(require_reader),
    db: AsyncSession = Depends(get_db),
) -> RuleDetail:
    rule = await _visible_rule(db, principal, code)
    versions = await rule_versions(db, rule.id)
    return RuleDetail(
        **RuleOut.of(rule).model_dump(),
        versions=[RuleVersionOut.of(rule, v) for v in versions],
    )


@router.get(
    "/{code}/versions/{version}",
    response_model=RuleVersionOut,
    summary="Get one version of a rule",
)
async def get_rule_version(
    code: str,
    version: str,
    principal: Principal = Depends(require_reader),
    db: AsyncSession = Depends(get_db),
) -> RuleVersionOut:
    rule = await _visible_rule(db, principal, code)
    for found in await rule_versions(db, rule.id):
        if found.version == version:
            return RuleVersionOut.of(rule, found)
    raise ApiError(404, f"Rule {code} has no version {version}")


async def _publish(
    db: AsyncSession, rule: Rule, body: RuleVersionIn, principal: Principal
) -> Response:
    """Adds ``body`` as the rule's new version and answers 201 with it."""
    version = add_version(
        db,
        rule,
        version=body.version,
        title=body.title,
        description=body.description,
        standard=body.standard,
        clause=body.clause,
        variants=body.variants,
        checklist=[item.model_dump(mode="json") for item in body.checklist],
        published_by=principal.user_id,
    )
    try:
        await db.flush()
    except IntegrityError as exc:  # another admin published the same code meanwhile
        raise ApiError(
            409,
            "The rule changed concurrently (another admin published meanwhile); retry",
            retryable=True,
        ) from exc
    await audit.record_by(
        db,
        principal,
        "rule.version_published",
        "rule",
        rule.id,
        {"code": rule.code, "version": version.version, "title": version.title},
    )
    return json_response(
        RuleVersionOut.of(rule, version),
        status_code=201,
        headers={"Location": f"/v1/rules/{rule.code}/versions/{version.version}"},
    )


@router.post(
    "",
    status_code=201,
    response_model=RuleVersionOut,
    summary="Create your organisation's own rule with its first version (admin)",
    description=(
        "The code must be new in your organisation (409 otherwise) and must not start with "
        "a shipped catalogue prefix (`AS1851-`, `AS2293-`: 422). Honours `Idempotency-Key`."
    ),
    responses=error_responses(*IDEMPOTENCY_ERROR_STATUSES),
)
async def create_rule(
    body: RuleCreate,
    principal: Principal = Depends(require_admin),
    db: AsyncSession = Depends(get_db),
    idempotency: IdempotentRequest = Depends(idempotency_optional),
) -> Response:
    if is_reserved_code(body.code):
        detail = "codes starting with AS1851- or AS2293- are reserved for the shipped catalogue"
        raise ApiError(
            422, f"The code {detail}", errors=[FieldError(pointer="/code", detail=detail)]
        )

    async def work() -> Response:
        if await find_rule(db, principal.organisation_id, body.code) is not None:
            raise ApiError(
                409, f"Rule {body.code} already exists; publish a new version of it instead"
            )
        rule = Rule(
            id=uuid.uuid4(),
            organisation_id=principal.organisation_id,
            code=body.code,
            asset_type=body.asset_type.value,
            frequency=body.frequency.value,
            standard=body.standard,
            latest_version=body.version,
        )
        db.add(rule)
        return await _publish(db, rule, body, principal)

    return await idempotency.run(principal, work)


@router.post(
    "/{code}/versions",
    status_code=201,
    response_model=RuleVersionOut,
    summary="Publish a new version of your organisation's rule (admin)",
    description=(
        "Versions are immutable: records made under an older version keep it. The new "
        "version number must be above every existing one (409 otherwise). Shipped catalogue "
        "rules are read-only: publishing a version of one is **403**. Honours "
        "`Idempotency-Key`."
    ),
    responses=error_responses(*IDEMPOTENCY_ERROR_STATUSES),
)
async def publish_version(
    code: str,
    body: RuleVersionIn,
    principal: Principal = Depends(require_admin),
    db: AsyncSession = Depends(get_db),
    idempotency: IdempotentRequest = Depends(idempotency_optional),
) -> Response:
    async def work() -> Response:
        rule = await find_rule(db, principal.organisation_id, code, for_update=True)
        if rule is None:
            raise _rule_not_found(code)
        if rule.organisation_id is None:
            raise ApiError(
                403,
                f"Rule {code} is part of the shipped catalogue and read-only; create your "
                "own rule (POST /v1/rules) instead",
            )
        latest = parse_version(rule.latest_version)
        if parse_version(body.version) <= latest:
            raise ApiError(
                409,
                f"Version {body.version} is not above the latest version "
                f"{rule.latest_version} of rule {code}",
            )
        return await _publish(db, rule, body, principal)

    return await idempotency.run(principal, work)
