"""Request and response bodies of defects, deadlines and session evaluations."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, field_validator

from src.app.core.schemas import RequestModel, ResourceModel, UTCTimestamp
from src.app.defects.evaluation import SessionEvaluation, answers_pointer
from src.app.defects.lifecycle import DefectStatus, is_overdue
from src.app.defects.models import Defect, DefectEvent
from src.app.rules.checklist import DefectTemplate, ItemType, Outcome, Severity
from src.app.rules.frequency import Frequency

Remark = Annotated[str, Field(min_length=1, max_length=2000)]
Note = Annotated[str, Field(max_length=2000)]
EvidenceIds = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=64)]],
    Field(
        max_length=50,
        description="Ids of evidence (photos before and after) supporting the defect.",
    ),
]
SEVERITY_DESCRIPTION = (
    "critical, non_critical, non_conformance (AS 1851 defect classes), recommendation, "
    "informational."
)


class DefectCreate(RequestModel):
    """A defect raised by hand. Give the asset (its building follows) or the building."""

    building_id: uuid.UUID | None = Field(
        default=None, description="Required unless `asset_id` is given."
    )
    asset_id: uuid.UUID | None = None
    session_id: uuid.UUID | None = Field(
        default=None, description="The test session that found it (same building)."
    )
    severity: Severity = Field(description=SEVERITY_DESCRIPTION)
    remark: Remark
    rule_code: str | None = Field(
        default=None,
        max_length=64,
        description="Optional: the rule (its latest version) and `item_key` it relates to.",
    )
    item_key: str | None = Field(default=None, max_length=64)
    evidence_ids: EvidenceIds = Field(default_factory=list)


class DefectUpdate(RequestModel):
    """A status move (with a note) and/or edits; only the fields sent change."""

    status: DefectStatus | None = Field(
        default=None,
        description="The next status (see the life cycle); the current one is a no-op. "
        "`cancelled` is for admins and needs a `note` (the reason).",
    )
    note: Note | None = Field(default=None, description="Kept in the history with the change.")
    severity: Severity | None = Field(default=None, description=SEVERITY_DESCRIPTION)
    remark: Remark | None = None
    evidence_ids: EvidenceIds | None = None

    @field_validator("status", "severity", "remark", "evidence_ids", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may not be null")
        return value


class DefectOut(ResourceModel):
    building_id: uuid.UUID
    asset_id: uuid.UUID | None
    session_id: uuid.UUID | None
    rule_version_id: uuid.UUID | None = Field(
        description="The rule version whose checklist item raised it."
    )
    rule_code: str | None
    rule_version: str | None
    item_key: str | None
    severity: Severity
    status: DefectStatus
    remark: str
    evidence_ids: list[str]
    source: str = Field(description="`evaluation` (raised by a session's completion) or `manual`.")
    raised_by: uuid.UUID | None
    response_due_at: UTCTimestamp | None = Field(
        description="Acknowledge before this (the organisation's deadline for the severity "
        "when raised); null: no deadline."
    )
    acknowledged_at: UTCTimestamp | None
    overdue: bool = Field(description="Past `response_due_at` and still `open`.")
    cancel_reason: str | None

    @classmethod
    def of(cls, defect: Defect, now: datetime) -> DefectOut:
        status = DefectStatus(defect.status)
        return cls.model_validate(
            {
                **{name: getattr(defect, name) for name in _DEFECT_FIELDS},
                "overdue": is_overdue(status, defect.response_due_at, now),
            }
        )


_DEFECT_FIELDS = [name for name in DefectOut.model_fields if name != "overdue"]


class DefectEventOut(BaseModel):
    id: uuid.UUID
    from_status: DefectStatus | None = Field(description="Null when the defect was raised.")
    to_status: DefectStatus
    note: str
    changes: dict[str, Any] = Field(description="Fields an edit changed: {field: [old, new]}.")
    actor_id: uuid.UUID | None
    created_at: UTCTimestamp

    @classmethod
    def of(cls, event: DefectEvent) -> DefectEventOut:
        return cls.model_validate(event, from_attributes=True)


class DefectDetail(DefectOut):
    history: list[DefectEventOut] = Field(description="Oldest first: who, when, what, why.")


Hours = Annotated[int, Field(ge=1, le=24 * 366)]


class DeadlinesBody(RequestModel):
    """Response deadline in hours per severity; null means none."""

    critical: Hours | None
    non_critical: Hours | None
    non_conformance: Hours | None
    recommendation: Hours | None
    informational: Hours | None


class DeadlinesOut(BaseModel):
    critical: int | None
    non_critical: int | None
    non_conformance: int | None
    recommendation: int | None
    informational: int | None


# --- evaluation --------------------------------------------------------------------------


class ItemOutcomeOut(BaseModel):
    key: str
    prompt: str
    type: ItemType
    outcome: Outcome
    answer: Any = Field(description="The answer found (null when none).")
    detail: str | None = Field(description="Why it is missing or out of limits.")
    defect: DefectTemplate | None = Field(description="The defect this outcome implies.")


class RuleOutcomeOut(BaseModel):
    rule_code: str
    rule_version: str
    rule_version_id: uuid.UUID
    title: str
    frequency: Frequency
    pointer: str = Field(description="Where this rule's answers for the asset live.")
    items: list[ItemOutcomeOut]


class AssetOutcomeOut(BaseModel):
    asset_id: uuid.UUID
    asset_type: str
    location: str
    barcode: str | None
    rules: list[RuleOutcomeOut]


class ImpliedDefectOut(BaseModel):
    asset_id: uuid.UUID
    rule_code: str
    rule_version: str
    rule_version_id: uuid.UUID
    item_key: str
    outcome: Outcome
    severity: Severity
    remark: str


class ProblemOut(BaseModel):
    pointer: str = Field(description="JSON Pointer into the results document.")
    detail: str


class EvaluationOut(BaseModel):
    session_id: uuid.UUID
    results_version: int = Field(description="The results version evaluated.")
    rules_as_of: UTCTimestamp = Field(
        description="Rule versions published at or before this instant apply: the session's "
        "`started_at`, or now for a session not started yet."
    )
    pinned: bool = Field(description="Whether `rules_as_of` is the session's start (fixed).")
    counts: dict[Outcome, int] = Field(description="How many items have each outcome.")
    assets: list[AssetOutcomeOut]
    defects: list[ImpliedDefectOut] = Field(description="What completing the session raises.")
    problems: list[ProblemOut] = Field(
        description="Answers that were not evaluated (unknown asset, rule not applicable...)."
    )

    @classmethod
    def of(cls, evaluation: SessionEvaluation) -> EvaluationOut:
        counts = dict.fromkeys(Outcome, 0)
        assets: list[AssetOutcomeOut] = []
        for asset_eval in evaluation.assets:
            rules = []
            for rule_eval in asset_eval.rules:
                rule, version = rule_eval.applicable.rule, rule_eval.applicable.version
                items = []
                for item, result in rule_eval.items:
                    counts[result.outcome] += 1
                    items.append(
                        ItemOutcomeOut(
                            key=item.key,
                            prompt=item.prompt,
                            type=item.type,
                            outcome=result.outcome,
                            answer=result.answer,
                            detail=result.detail,
                            defect=result.defect,
                        )
                    )
                rules.append(
                    RuleOutcomeOut(
                        rule_code=rule.code,
                        rule_version=version.version,
                        rule_version_id=version.id,
                        title=version.title,
                        frequency=Frequency(rule.frequency),
                        pointer=answers_pointer(asset_eval.asset.id, rule.code),
                        items=items,
                    )
                )
            asset = asset_eval.asset
            assets.append(
                AssetOutcomeOut(
                    asset_id=asset.id,
                    asset_type=asset.asset_type,
                    location=asset.location,
                    barcode=asset.barcode,
                    rules=rules,
                )
            )
        defects = [
            ImpliedDefectOut(
                asset_id=d.asset.id,
                rule_code=d.applicable.rule.code,
                rule_version=d.applicable.version.version,
                rule_version_id=d.applicable.version.id,
                item_key=d.item_key,
                outcome=d.outcome,
                severity=d.defect.severity,
                remark=d.defect.remark,
            )
            for d in evaluation.implied_defects()
        ]
        return cls(
            session_id=evaluation.session.id,
            results_version=evaluation.results_version,
            rules_as_of=evaluation.rules_as_of,
            pinned=evaluation.pinned,
            counts=counts,
            assets=assets,
            defects=defects,
            problems=[ProblemOut(pointer=p.pointer, detail=p.detail) for p in evaluation.problems],
        )
