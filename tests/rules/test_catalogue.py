"""The shipped catalogue is well-formed, covers the register, and loads idempotently."""

from __future__ import annotations

from collections import Counter

import pytest
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from src.app.buildings.models import AssetType
from src.app.core.transactions import begin_write
from src.app.rules.catalogue import AS1851, AS2293, CATALOGUE, RESERVED_CODE_PREFIXES
from src.app.rules.checklist import (
    FAILING_OUTCOMES,
    ChecklistItem,
    ItemType,
    checklist_from_json,
    parse_version,
)
from src.app.rules.frequency import Frequency
from src.app.rules.models import RuleVersion
from src.app.rules.service import load_shipped_catalogue


def test_every_rule_is_well_formed() -> None:
    codes = Counter(rule.code for rule in CATALOGUE)
    assert all(count == 1 for count in codes.values()), codes
    for rule in CATALOGUE:
        assert rule.code.startswith(RESERVED_CODE_PREFIXES)
        assert rule.standard in (AS1851, AS2293)
        parse_version(rule.version)
        checklist = checklist_from_json(list(rule.items))
        for item in checklist.items:
            assert set(item.defects) <= FAILING_OUTCOMES[item.type]
            if item.type in (ItemType.pass_fail, ItemType.number, ItemType.choice):
                # Every check that can fail says which defect the failure is.
                assert item.defects, (rule.code, item.key)
            if item.type is ItemType.number:
                assert item.unit and (item.min is not None or item.max is not None)


def test_every_asset_type_is_covered() -> None:
    covered = {rule.asset_type for rule in CATALOGUE}
    assert covered == set(AssetType)


def test_the_routines_the_brief_names_are_shipped() -> None:
    shipped = {(rule.asset_type, rule.frequency) for rule in CATALOGUE}
    f = Frequency
    for wanted in [
        (AssetType.fire_extinguisher, f.six_monthly),
        (AssetType.fire_extinguisher, f.yearly),
        (AssetType.fire_extinguisher, f.five_yearly),
        (AssetType.fire_hose_reel, f.six_monthly),
        (AssetType.fire_hydrant, f.yearly),
        (AssetType.sprinkler_valve_set, f.monthly),
        (AssetType.sprinkler_valve_set, f.yearly),
        (AssetType.fire_door, f.six_monthly),
        (AssetType.fire_door, f.yearly),
        (AssetType.fire_detection_panel, f.monthly),
        (AssetType.fire_detection_panel, f.yearly),
        (AssetType.emergency_light, f.six_monthly),
        (AssetType.emergency_light, f.yearly),
        (AssetType.exit_sign, f.six_monthly),
        (AssetType.exit_sign, f.yearly),
    ]:
        assert wanted in shipped
    lighting = [
        r for r in CATALOGUE if r.asset_type in (AssetType.emergency_light, AssetType.exit_sign)
    ]
    assert {r.standard for r in lighting} == {AS2293}


async def test_loading_twice_adds_nothing(app: FastAPI) -> None:
    async with app.state.database.sessionmaker() as db:
        await begin_write(db)
        assert await load_shipped_catalogue(db) == 0
        await db.commit()
        total = await db.scalar(select(func.count()).select_from(RuleVersion))
    assert total is not None and total >= len(CATALOGUE)


async def test_published_versions_cannot_be_updated(app: FastAPI) -> None:
    async with app.state.database.sessionmaker() as db:
        version = (await db.execute(select(RuleVersion).limit(1))).scalar_one()
        version.title = "Rewritten"
        with pytest.raises(RuntimeError, match="cannot change"):
            await db.flush()
        await db.rollback()


def test_frequency_periods_and_ranks() -> None:
    assert Frequency.monthly.period_months == 1
    assert Frequency.six_monthly.period_months == 6
    assert Frequency.yearly.period_months == 12
    assert Frequency.five_yearly.period_months == 60
    assert Frequency.weekly.period_days == 7
    assert Frequency.weekly.period_months == 0
    assert Frequency.yearly.covers(Frequency.six_monthly)
    assert Frequency.yearly.covers(Frequency.yearly)
    assert not Frequency.monthly.covers(Frequency.yearly)
    ordered = sorted(Frequency, key=lambda f: f.period_months or 0.25)
    assert [f.rank for f in ordered] == sorted(f.rank for f in Frequency)


@given(st.sampled_from(list(Frequency)), st.sampled_from(list(Frequency)))
def test_rank_order_follows_the_period(a: Frequency, b: Frequency) -> None:
    months = {f: f.period_months or f.period_days / 30 for f in Frequency}
    assert a.covers(b) == (months[a] >= months[b])


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        ({"key": "a", "prompt": "p", "type": "text", "unit": "kPa"}, "number items only"),
        ({"key": "a", "prompt": "p", "type": "number", "min": 5, "max": 1}, "min must not"),
        ({"key": "a", "prompt": "p", "type": "choice"}, "choices are required"),
        (
            {"key": "a", "prompt": "p", "type": "choice", "choices": [{"value": "x"}]},
            "at least two",
        ),
        (
            {
                "key": "a",
                "prompt": "p",
                "type": "text",
                "defects": {"fail": {"severity": "critical", "remark": "r"}},
            },
            "cannot have outcome",
        ),
        ({"key": "A b", "prompt": "p", "type": "text"}, "pattern"),
    ],
)
def test_malformed_items_are_refused(item: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        ChecklistItem.model_validate(item)


def test_duplicate_item_keys_are_refused() -> None:
    item = {"key": "a", "prompt": "p", "type": "text"}
    with pytest.raises(ValueError, match="unique"):
        checklist_from_json([item, item])


@pytest.mark.parametrize("text", ["1", "1.0", "01.0.0", "1.0.0-beta", "v1.0.0", ""])
def test_versions_must_be_semver(text: str) -> None:
    with pytest.raises(ValueError, match="semantic version"):
        parse_version(text)
