"""Rule catalogue logic: loading the shipped catalogue, visibility, publishing versions."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.core.clock import utc_now
from src.app.rules.catalogue import CATALOGUE, RESERVED_CODE_PREFIXES, ShippedRule
from src.app.rules.checklist import checklist_from_json, parse_version
from src.app.rules.models import Rule, RuleVersion

logger = logging.getLogger("firemode.rules")
_LOAD_LOCK_ID = 0x46_4D_52_55_4C_45_53  # "FMRULES"


class CatalogueConflict(RuntimeError):
    """A shipped version already loaded differs from the code's definition."""


def is_reserved_code(code: str) -> bool:
    """Codes of the shipped catalogue (organisations may not publish under them)."""
    return code.upper().startswith(RESERVED_CODE_PREFIXES)


def visible_to(organisation_id: uuid.UUID) -> Any:
    """The shipped catalogue plus the organisation's own rules."""
    return or_(Rule.organisation_id.is_(None), Rule.organisation_id == organisation_id)


def visible_rules(organisation_id: uuid.UUID) -> Select[Any]:
    return select(Rule).where(visible_to(organisation_id))


async def find_rule(
    db: AsyncSession, organisation_id: uuid.UUID, code: str, *, for_update: bool = False
) -> Rule | None:
    statement = visible_rules(organisation_id).where(Rule.code == code)
    if for_update:
        statement = statement.with_for_update()
    found: Rule | None = (await db.execute(statement)).scalar_one_or_none()
    return found


async def rule_versions(db: AsyncSession, rule_id: uuid.UUID) -> Sequence[RuleVersion]:
    """Every version of a rule, newest version number first."""
    statement = (
        select(RuleVersion)
        .where(RuleVersion.rule_id == rule_id)
        .order_by(RuleVersion.major.desc(), RuleVersion.minor.desc(), RuleVersion.patch.desc())
    )
    return (await db.execute(statement)).scalars().all()


def rules_with_versions(
    organisation_id: uuid.UUID,
    *,
    asset_types: Iterable[str] | None = None,
    frequency: str | None = None,
    as_of: datetime | None = None,
) -> Select[Rule, RuleVersion]:
    """Pure: (rule, version) rows visible to the organisation, for the given asset types
    (default all) and frequency, published at or before ``as_of`` (default: any time).
    ``latest_per_rule`` then keeps each rule's latest version."""
    statement = (
        select(Rule, RuleVersion)
        .join(RuleVersion, RuleVersion.rule_id == Rule.id)
        .where(visible_to(organisation_id))
    )
    if asset_types is not None:
        statement = statement.where(Rule.asset_type.in_(sorted(set(asset_types))))
    if frequency is not None:
        statement = statement.where(Rule.frequency == frequency)
    if as_of is not None:
        statement = statement.where(RuleVersion.published_at <= as_of)
    return statement


@dataclass(frozen=True, slots=True)
class ApplicableRule:
    """A rule and the version of it that applies."""

    rule: Rule
    version: RuleVersion


def variant_matches(variants: Sequence[str], variant: str | None) -> bool:
    """An empty variant list applies to every variant; an asset without one matches all."""
    return not variants or variant is None or variant in variants


def latest_per_rule(
    pairs: Iterable[tuple[Rule, RuleVersion]], *, as_of: datetime | None = None
) -> list[ApplicableRule]:
    """Pure: the highest version of each rule published at or before ``as_of``."""
    best: dict[uuid.UUID, ApplicableRule] = {}
    for rule, version in pairs:
        if as_of is not None and version.published_at > as_of:
            continue
        current = best.get(rule.id)
        key = (version.major, version.minor, version.patch)
        if current is None or key > (
            current.version.major,
            current.version.minor,
            current.version.patch,
        ):
            best[rule.id] = ApplicableRule(rule, version)
    return sorted(best.values(), key=lambda a: a.rule.code)


async def applicable_rules(
    db: AsyncSession,
    *,
    organisation_id: uuid.UUID,
    asset_types: Iterable[str] | None = None,
    variant: str | None = None,
    frequency: str | None = None,
    as_of: datetime | None = None,
) -> list[ApplicableRule]:
    """The rules (each at its latest version published by ``as_of``, default now) that
    apply to the given asset types (default all) and variant, visible to an organisation.
    """
    statement = rules_with_versions(
        organisation_id, asset_types=asset_types, frequency=frequency, as_of=as_of
    )
    rows = [(rule, version) for rule, version in (await db.execute(statement)).all()]
    return [
        applicable
        for applicable in latest_per_rule(rows, as_of=as_of)
        if variant_matches(applicable.version.variants, variant)
    ]


def add_version(
    db: AsyncSession,
    rule: Rule,
    *,
    version: str,
    title: str,
    description: str,
    standard: str,
    clause: str,
    variants: Sequence[str],
    checklist: list[dict[str, Any]],
    published_by: uuid.UUID | None,
    published_at: datetime | None = None,
) -> RuleVersion:
    """Adds a version (the caller checked it is above the latest) and moves the rule on."""
    major, minor, patch = parse_version(version)
    row = RuleVersion(
        rule_id=rule.id,
        version=version,
        major=major,
        minor=minor,
        patch=patch,
        title=title,
        description=description,
        standard=standard,
        clause=clause,
        variants=list(variants),
        # Normalised (defaults filled in), so what is stored is what is evaluated.
        checklist=checklist_from_json(checklist).model_dump(mode="json")["items"],
        published_at=published_at or utc_now(),
        published_by=published_by,
    )
    db.add(row)
    rule.latest_version = version
    rule.standard = standard
    return row


def _same_definition(row: RuleVersion, shipped: ShippedRule) -> bool:
    expected = checklist_from_json(list(shipped.items)).model_dump(mode="json")["items"]
    return (
        row.title == shipped.title
        and row.description == shipped.description
        and row.standard == shipped.standard
        and row.clause == shipped.clause
        and list(row.variants) == list(shipped.variants)
        and row.checklist == expected
    )


async def load_shipped_catalogue(
    db: AsyncSession, catalogue: Sequence[ShippedRule] = CATALOGUE
) -> int:
    """Inserts what is missing of the shipped catalogue; returns how many versions it added.

    Idempotent. The caller holds the write transaction and commits. A shipped version
    already loaded with another content raises ``CatalogueConflict`` (publish a new
    version number instead of editing one).
    """
    if db.get_bind().dialect.name == "postgresql":
        # Two deployments loading at once wait for each other instead of colliding.
        await db.execute(select(func.pg_advisory_xact_lock(_LOAD_LOCK_ID)))
    added = 0
    for shipped in catalogue:
        rule = (
            await db.execute(
                select(Rule).where(Rule.organisation_id.is_(None), Rule.code == shipped.code)
            )
        ).scalar_one_or_none()
        if rule is None:
            rule = Rule(
                id=uuid.uuid4(),
                organisation_id=None,
                code=shipped.code,
                asset_type=shipped.asset_type.value,
                frequency=shipped.frequency.value,
                standard=shipped.standard,
                latest_version=shipped.version,
            )
            db.add(rule)
            await db.flush()
        elif (rule.asset_type, rule.frequency) != (
            shipped.asset_type.value,
            shipped.frequency.value,
        ):
            raise CatalogueConflict(f"{shipped.code}: asset type and frequency cannot change")
        major, minor, patch = parse_version(shipped.version)
        existing = (
            await db.execute(
                select(RuleVersion).where(
                    RuleVersion.rule_id == rule.id,
                    RuleVersion.major == major,
                    RuleVersion.minor == minor,
                    RuleVersion.patch == patch,
                )
            )
        ).scalar_one_or_none()
        if existing is not None:
            if not _same_definition(existing, shipped):
                raise CatalogueConflict(
                    f"{shipped.code} {shipped.version} was loaded with another content; "
                    "shipped versions are immutable: add a new version"
                )
            continue
        latest = parse_version(rule.latest_version)
        row = add_version(
            db,
            rule,
            version=shipped.version,
            title=shipped.title,
            description=shipped.description,
            standard=shipped.standard,
            clause=shipped.clause,
            variants=shipped.variants,
            checklist=list(shipped.items),
            published_by=None,
        )
        if latest > (major, minor, patch):  # an older version loaded late stays behind
            rule.latest_version = ".".join(str(p) for p in latest)
        await db.flush()
        added += 1
        logger.debug("rule version loaded", extra={"code": rule.code, "version": row.version})
    logger.info("shipped rule catalogue loaded", extra={"versions_added": added})
    return added
