"""Request and response bodies of the rule catalogue."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import Field, field_validator

from src.app.buildings.models import AssetType
from src.app.core.schemas import RequestModel, ResourceModel, UTCTimestamp
from src.app.rules.checklist import SEMVER_PATTERN, Checklist, ChecklistItem
from src.app.rules.frequency import Frequency
from src.app.rules.models import Rule, RuleVersion

CODE_PATTERN = r"^[A-Z0-9][A-Z0-9_.-]{1,63}$"
Code = Annotated[
    str,
    Field(
        pattern=CODE_PATTERN,
        description="Upper-case letters, digits, `_`, `.` and `-` (2-64). Codes starting with "
        "`AS1851-` or `AS2293-` are the shipped catalogue's.",
        examples=["ACME-PUMP-WEEKLY"],
    ),
]
Version = Annotated[
    str,
    Field(
        pattern=SEMVER_PATTERN,
        description="Semantic version MAJOR.MINOR.PATCH, above every existing version.",
        examples=["1.1.0"],
    ),
]
Variant = Annotated[str, Field(min_length=1, max_length=64)]


class RuleVersionIn(RequestModel):
    """A new version of a rule. Asset type and frequency belong to the rule (code)."""

    version: Version
    title: Annotated[str, Field(min_length=1, max_length=200)]
    description: Annotated[str, Field(max_length=2000)] = ""
    standard: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        description="The standard it comes from, e.g. `AS 1851-2012`."
    )
    clause: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        description="Where in the standard, e.g. `Section 10`."
    )
    variants: list[Variant] = Field(
        default_factory=list,
        max_length=50,
        description="Asset variants (an asset's `attributes.variant`) it applies to; "
        "empty: every variant.",
    )
    checklist: list[ChecklistItem] = Field(
        min_length=1, max_length=100, description="The items, in the order they are asked."
    )

    @field_validator("checklist")
    @classmethod
    def _unique_keys(cls, items: list[ChecklistItem]) -> list[ChecklistItem]:
        Checklist(items=items)
        return items


class RuleCreate(RuleVersionIn):
    """A new organisation rule and its first version."""

    code: Code
    asset_type: AssetType
    frequency: Frequency


class RuleVersionOut(ResourceModel):
    code: str
    version: str
    title: str
    description: str
    standard: str
    clause: str
    asset_type: AssetType
    frequency: Frequency
    variants: list[str] = Field(description="Asset variants it applies to; empty: all.")
    checklist: list[ChecklistItem]
    published_at: UTCTimestamp = Field(
        description="When it was published; a session uses the versions published by the "
        "time it started."
    )
    published_by: uuid.UUID | None = Field(description="Null for the shipped catalogue.")
    shipped: bool = Field(description="Part of the shipped catalogue (read-only).")

    @classmethod
    def of(cls, rule: Rule, version: RuleVersion) -> RuleVersionOut:
        return cls(
            id=version.id,
            created_at=version.created_at,
            updated_at=version.updated_at,
            code=rule.code,
            version=version.version,
            title=version.title,
            description=version.description,
            standard=version.standard,
            clause=version.clause,
            asset_type=AssetType(rule.asset_type),
            frequency=Frequency(rule.frequency),
            variants=list(version.variants),
            checklist=[ChecklistItem.model_validate(i) for i in version.checklist],
            published_at=version.published_at,
            published_by=version.published_by,
            shipped=rule.organisation_id is None,
        )


class RuleOut(ResourceModel):
    code: str
    asset_type: AssetType
    frequency: Frequency
    standard: str = Field(description="The standard of the latest version.")
    latest_version: str
    shipped: bool = Field(
        description="Part of the shipped catalogue: read-only, visible to everyone. "
        "Otherwise your organisation's own rule."
    )

    @classmethod
    def of(cls, rule: Rule) -> RuleOut:
        return cls(
            id=rule.id,
            created_at=rule.created_at,
            updated_at=rule.updated_at,
            code=rule.code,
            asset_type=AssetType(rule.asset_type),
            frequency=Frequency(rule.frequency),
            standard=rule.standard,
            latest_version=rule.latest_version,
            shipped=rule.organisation_id is None,
        )


class RuleDetail(RuleOut):
    versions: list[RuleVersionOut] = Field(description="Every version, newest first.")
