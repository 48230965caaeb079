"""Evaluating a session's checklist answers over HTTP: layout, outcomes, rule pinning."""

from __future__ import annotations

import httpx

from tests.buildings.helpers import MakeTenant, assert_error
from tests.defects.helpers import answer, evaluation, move, outcomes, pointer, site
from tests.rules.test_rules_api import next_version, own_rule, unique_code

EXT = "AS1851-EXT-6M"


async def test_outcomes_of_a_six_monthly_extinguisher_round(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    s = await site(
        client,
        t.admin,
        t.technician,
        assets={"ext": {"asset_type": "fire_extinguisher"}, "door": {"asset_type": "fire_door"}},
    )
    ext = s.assets["ext"]
    written = await answer(
        client,
        t.technician,
        s.session_id,
        {
            pointer(ext, EXT, "location_access"): True,
            pointer(ext, EXT, "signage"): "pass",
            pointer(ext, EXT, "seal_pin"): False,
            pointer(ext, EXT, "body_condition"): "maybe",
            pointer(ext, EXT, "charge_state"): "empty",
        },
    )
    assert written.status_code == 200, written.text
    body = await evaluation(client, t.viewer, s.session_id)
    assert body["pinned"] is True and body["results_version"] == 5
    assert outcomes(body, ext, EXT) == {
        "location_access": "pass",
        "signage": "pass",
        "seal_pin": "fail",
        "body_condition": "missing",
        "charge_state": "fail",
        "hose_nozzle": "missing",
    }
    # The door is expected too (its 6-monthly rule), with nothing answered yet.
    door = outcomes(body, s.assets["door"], "AS1851-DOOR-6M")
    assert set(door.values()) == {"missing"}
    implied = {(d["item_key"], d["severity"]) for d in body["defects"]}
    assert implied == {("seal_pin", "non_critical"), ("charge_state", "critical")}
    assert body["counts"]["fail"] == 2


async def test_numbers_limits_choices_text_and_photos(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    s = await site(
        client,
        t.admin,
        t.technician,
        assets={f"e{i}": {"asset_type": "fire_extinguisher"} for i in range(4)},
        frequency="5-yearly",
    )
    rule = "AS1851-EXT-5Y"
    cases = {
        "e0": {"gross_mass": 10, "test_pressure": 2500, "test_stamp": "evidence-1"},
        "e1": {"gross_mass": 10.5, "test_pressure": 2499.9, "test_stamp": ["a", "b"]},
        "e2": {"gross_mass": -1, "test_pressure": "high", "test_stamp": []},
        "e3": {"gross_mass": True, "test_pressure": 1e9},
    }
    changes = {
        pointer(s.assets[name], rule, key): value
        for name, values in cases.items()
        for key, value in values.items()
    }
    assert (await answer(client, t.technician, s.session_id, changes)).status_code == 200
    body = await evaluation(client, t.technician, s.session_id)

    def got(name: str) -> dict[str, str]:
        all_items = outcomes(body, s.assets[name], rule)
        return {k: all_items[k] for k in ("gross_mass", "test_pressure", "test_stamp")}

    assert got("e0") == {"gross_mass": "pass", "test_pressure": "pass", "test_stamp": "pass"}
    assert got("e1") == {
        "gross_mass": "out_of_limits",
        "test_pressure": "out_of_limits",
        "test_stamp": "pass",
    }
    assert got("e2") == {
        "gross_mass": "out_of_limits",
        "test_pressure": "missing",
        "test_stamp": "missing",
    }
    assert got("e3") == {"gross_mass": "missing", "test_pressure": "pass", "test_stamp": "missing"}
    details = {
        i["key"]: i["detail"]
        for a in body["assets"]
        if a["asset_id"] == s.assets["e1"]
        for r in a["rules"]
        for i in r["items"]
    }
    assert details["gross_mass"] == "10.5 is above the maximum 10"
    assert details["test_pressure"] == "2499.9 is below the minimum 2500"
    # A missing photo implies no defect; an out-of-limits pressure is critical.
    e1 = {d["item_key"]: d for d in body["defects"] if d["asset_id"] == s.assets["e1"]}
    assert e1["test_pressure"]["severity"] == "critical"
    assert e1["test_pressure"]["outcome"] == "out_of_limits"


async def test_other_rules_answered_and_problems(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    s = await site(
        client,
        t.admin,
        t.technician,
        assets={
            "ext": {"asset_type": "fire_extinguisher"},
            "light": {"asset_type": "emergency_light"},
        },
        frequency="yearly",
    )
    ext, light = s.assets["ext"], s.assets["light"]
    writes = {
        # A 6-monthly rule answered in a yearly session is evaluated too.
        pointer(ext, EXT, "seal_pin"): True,
        pointer(ext, "AS1851-DOOR-6M", "self_closes"): True,  # not an extinguisher rule
        pointer(ext, "NO-SUCH-RULE", "x"): 1,
        pointer("not-a-uuid", EXT, "seal_pin"): True,
        pointer("00000000-0000-4000-8000-000000000000", EXT, "seal_pin"): True,
        pointer(light, "AS2293-EMLIGHT-12M", "duration_minutes"): 95,
    }
    assert (await answer(client, t.technician, s.session_id, writes)).status_code == 200
    body = await evaluation(client, t.technician, s.session_id)
    codes = {a["asset_id"]: sorted(r["rule_code"] for r in a["rules"]) for a in body["assets"]}
    assert codes == {ext: ["AS1851-EXT-12M", EXT], light: ["AS2293-EMLIGHT-12M"]}
    assert outcomes(body, light, "AS2293-EMLIGHT-12M")["duration_minutes"] == "pass"
    problems = {p["pointer"]: p["detail"] for p in body["problems"]}
    assert set(problems) == {
        f"/checklists/{ext}/AS1851-DOOR-6M",
        f"/checklists/{ext}/NO-SUCH-RULE",
        "/checklists/not-a-uuid",
        "/checklists/00000000-0000-4000-8000-000000000000",
    }
    assert problems["/checklists/not-a-uuid"] == "not an asset id"


async def test_variants_select_rules(client: httpx.AsyncClient, make_tenant: MakeTenant) -> None:
    t = await make_tenant()
    code = unique_code()
    body = own_rule(code, asset_type="fire_door", frequency="6-monthly", variants=["smoke_door"])
    assert (await client.post("/v1/rules", json=body, headers=t.admin.headers)).status_code == 201
    s = await site(
        client,
        t.admin,
        t.technician,
        assets={
            "smoke": {"asset_type": "fire_door", "attributes": {"variant": "smoke_door"}},
            "fire": {"asset_type": "fire_door", "attributes": {"variant": "fire_door"}},
        },
    )
    result = await evaluation(client, t.technician, s.session_id)
    codes = {a["asset_id"]: {r["rule_code"] for r in a["rules"]} for a in result["assets"]}
    assert codes[s.assets["smoke"]] == {"AS1851-DOOR-6M", code}
    assert codes[s.assets["fire"]] == {"AS1851-DOOR-6M"}


async def test_a_new_version_does_not_change_a_started_session(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    code = unique_code()
    v1 = own_rule(code, asset_type="fire_pump", frequency="monthly")
    assert (await client.post("/v1/rules", json=v1, headers=t.admin.headers)).status_code == 201
    old = await site(
        client,
        t.admin,
        t.technician,
        assets={"pump": {"asset_type": "fire_pump"}},
        frequency="monthly",
    )
    pump = old.assets["pump"]
    await answer(client, t.technician, old.session_id, {pointer(pump, code, "started"): True})
    before = await evaluation(client, t.technician, old.session_id)

    v2 = next_version(v1, "2.0.0")
    v2["checklist"] = [
        *v1["checklist"],
        {
            "key": "pressure",
            "prompt": "Churn pressure",
            "type": "number",
            "unit": "kPa",
            "min": 700,
            "defects": {"out_of_limits": {"severity": "critical", "remark": "Low"}},
        },
    ]
    published = await client.post(f"/v1/rules/{code}/versions", json=v2, headers=t.admin.headers)
    assert published.status_code == 201
    await answer(client, t.technician, old.session_id, {pointer(pump, code, "pressure"): 100})
    after = await evaluation(client, t.technician, old.session_id)
    assert outcomes(after, pump, code) == outcomes(before, pump, code) == {"started": "pass"}
    versions = {r["rule_code"]: r["rule_version"] for a in after["assets"] for r in a["rules"]}
    assert versions[code] == "1.0.0"
    assert after["rules_as_of"] == before["rules_as_of"]

    # A session started after the publication gets the new version.
    new = await site(
        client,
        t.admin,
        t.technician,
        assets={"pump": {"asset_type": "fire_pump"}},
        frequency="monthly",
    )
    await answer(
        client, t.technician, new.session_id, {pointer(new.assets["pump"], code, "pressure"): 100}
    )
    latest = await evaluation(client, t.technician, new.session_id)
    assert outcomes(latest, new.assets["pump"], code) == {
        "started": "missing",
        "pressure": "out_of_limits",
    }


async def test_an_unstarted_session_uses_todays_rules(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    s = await site(
        client,
        t.admin,
        t.technician,
        assets={"ext": {"asset_type": "fire_extinguisher"}},
        start=False,
    )
    body = await evaluation(client, t.technician, s.session_id)
    assert body["pinned"] is False
    await move(client, t.technician, s.session_id, "scheduled", "in_progress")
    session = (
        await client.get(f"/v1/tests/sessions/{s.session_id}", headers=t.viewer.headers)
    ).json()
    pinned = await evaluation(client, t.technician, s.session_id)
    assert pinned["pinned"] is True
    assert session["started_at"] == pinned["rules_as_of"]


async def test_evaluation_tenancy_and_auth(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t, other = await make_tenant(), await make_tenant()
    s = await site(
        client, t.admin, t.technician, assets={"ext": {"asset_type": "fire_extinguisher"}}
    )
    url = f"/v1/tests/sessions/{s.session_id}/evaluation"
    assert_error(await client.get(url, headers=other.admin.headers), 404)
    assert_error(await client.get(url), 401)
    for user in (t.viewer, t.technician, t.admin):
        assert (await client.get(url, headers=user.headers)).status_code == 200
