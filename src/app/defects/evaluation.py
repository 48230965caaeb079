"""A session's results evaluated against the rules that applied when it started.

Where answers live in the results document (a map keyed by ids, never by array index, so
that devices editing different items never conflict)::

    /checklists/{asset_id}/{rule_code}/{item_key} = answer

The rule versions are those published at or before the session's ``started_at`` (when it
moved to in_progress), so a version published later never changes an earlier session's
evaluation; a session not started yet is evaluated against today's versions. The rules
evaluated for an asset of the session's building are those of the session's frequency for
its type and variant, plus any other applicable rule it holds answers for.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.buildings.models import Asset
from src.app.results.documents import current_document
from src.app.rules.checklist import ChecklistItem, DefectTemplate, Outcome
from src.app.rules.evaluation import ItemResult, evaluate_checklist
from src.app.rules.service import ApplicableRule, applicable_rules, variant_matches
from src.app.sessions.models import TestSession

CHECKLISTS = "checklists"


def answers_pointer(*parts: uuid.UUID | str) -> str:
    """The JSON Pointer of ``/checklists/{asset_id}[/{rule_code}[/{item_key}]]``."""
    texts = (CHECKLISTS, *(str(p) for p in parts))
    return "/" + "/".join(t.replace("~", "~0").replace("/", "~1") for t in texts)


@dataclass(frozen=True, slots=True)
class Problem:
    pointer: str
    detail: str


@dataclass(slots=True)
class RuleEvaluation:
    applicable: ApplicableRule
    items: list[tuple[ChecklistItem, ItemResult]]


@dataclass(slots=True)
class AssetEvaluation:
    asset: Asset
    rules: list[RuleEvaluation]


@dataclass(frozen=True, slots=True)
class ImpliedDefect:
    asset: Asset
    applicable: ApplicableRule
    item_key: str
    outcome: Outcome
    defect: DefectTemplate


@dataclass(slots=True)
class SessionEvaluation:
    session: TestSession
    results_version: int
    rules_as_of: datetime
    pinned: bool
    assets: list[AssetEvaluation] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def implied_defects(self) -> Iterator[ImpliedDefect]:
        for asset in self.assets:
            for rule in asset.rules:
                for _item, result in rule.items:
                    if result.defect is not None:
                        yield ImpliedDefect(
                            asset.asset, rule.applicable, result.key, result.outcome, result.defect
                        )


def _asset_key(text: str) -> str | None:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


def _variant(asset: Asset) -> str | None:
    value = (asset.attributes or {}).get("variant")
    return value if isinstance(value, str) else None


async def evaluate_session(
    db: AsyncSession, test_session: TestSession, *, now: datetime
) -> SessionEvaluation:
    """Evaluates the session's current results (read through ``current_document``)."""
    version, document = await current_document(db, test_session.organisation_id, test_session.id)
    as_of = test_session.started_at or now
    evaluation = SessionEvaluation(
        test_session, version, as_of, test_session.started_at is not None
    )
    raw = document.get(CHECKLISTS, {})
    if not isinstance(raw, Mapping):
        evaluation.problems.append(Problem(f"/{CHECKLISTS}", "must be an object keyed by asset id"))
        raw = {}
    answered: dict[str, Any] = {}
    for key, value in raw.items():
        normal = _asset_key(key)
        if normal is None:
            evaluation.problems.append(Problem(answers_pointer(key), "not an asset id"))
        else:
            answered[normal] = value
    assets: list[Asset] = []
    if test_session.building_id is not None:
        assets = list(
            (
                await db.execute(
                    select(Asset)
                    .where(
                        Asset.organisation_id == test_session.organisation_id,
                        Asset.building_id == test_session.building_id,
                    )
                    .order_by(Asset.created_at, Asset.id)
                )
            ).scalars()
        )
    known = {str(a.id) for a in assets}
    for key in sorted(set(answered) - known):
        pointer = answers_pointer(key)
        evaluation.problems.append(Problem(pointer, "not an asset of this session's building"))
    rules = await applicable_rules(
        db,
        organisation_id=test_session.organisation_id,
        asset_types={a.asset_type for a in assets},
        as_of=as_of,
    )
    for asset in assets:
        asset_answers = answered.get(str(asset.id), {})
        if not isinstance(asset_answers, Mapping):
            evaluation.problems.append(
                Problem(answers_pointer(asset.id), "must be an object keyed by rule code")
            )
            asset_answers = {}
        candidates = {
            r.rule.code: r
            for r in rules
            if r.rule.asset_type == asset.asset_type
            and variant_matches(r.version.variants, _variant(asset))
        }
        for code in sorted(set(asset_answers) - set(candidates)):
            evaluation.problems.append(
                Problem(
                    answers_pointer(asset.id, code),
                    f"no rule {code} applies to this asset (its type, variant, or the rules "
                    "published when the session started)",
                )
            )
        chosen = [
            r
            for code, r in sorted(candidates.items())
            if code in asset_answers or r.rule.frequency == test_session.frequency
        ]
        if not chosen:
            continue
        asset_evaluation = AssetEvaluation(asset, [])
        for applicable in chosen:
            items = [ChecklistItem.model_validate(i) for i in applicable.version.checklist]
            results = evaluate_checklist(items, asset_answers.get(applicable.rule.code))
            asset_evaluation.rules.append(
                RuleEvaluation(applicable, list(zip(items, results, strict=True)))
            )
        evaluation.assets.append(asset_evaluation)
    return evaluation
