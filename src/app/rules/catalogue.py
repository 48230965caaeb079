"""The shipped rule catalogue, in our own words.

Prompts and remarks paraphrase what routine service checks, as publicly described; they do
not reproduce the standards' text. ``clause`` names the part of the standard a rule comes
from as commonly cited; check it against your copy of the standard. Changing a shipped
rule means adding a new version here (versions are immutable once loaded).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from src.app.buildings.models import AssetType
from src.app.rules.checklist import Severity
from src.app.rules.frequency import Frequency

AS1851 = "AS 1851-2012"
AS2293 = "AS/NZS 2293.2:2019"
RESERVED_CODE_PREFIXES = ("AS1851-", "AS2293-")
"""Codes of the shipped catalogue start with these; organisations may not use them."""

C, NC, NCF, REC = (
    Severity.critical,
    Severity.non_critical,
    Severity.non_conformance,
    Severity.recommendation,
)


@dataclass(frozen=True)
class ShippedRule:
    code: str
    version: str
    title: str
    standard: str
    clause: str
    asset_type: AssetType
    frequency: Frequency
    items: tuple[dict[str, Any], ...]
    variants: tuple[str, ...] = ()
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _defect(severity: Severity, remark: str) -> dict[str, str]:
    return {"severity": severity.value, "remark": remark}


def check(key: str, prompt: str, severity: Severity, remark: str) -> dict[str, Any]:
    """A pass/fail item; a fail raises a defect of ``severity``."""
    return {
        "key": key,
        "prompt": prompt,
        "type": "pass_fail",
        "defects": {"fail": _defect(severity, remark)},
    }


def reading(
    key: str,
    prompt: str,
    unit: str,
    low: float | None,
    high: float | None,
    severity: Severity,
    remark: str,
) -> dict[str, Any]:
    """A measured value with limits; outside them raises a defect of ``severity``."""
    return {
        "key": key,
        "prompt": prompt,
        "type": "number",
        "unit": unit,
        "min": low,
        "max": high,
        "defects": {"out_of_limits": _defect(severity, remark)},
    }


def note(key: str, prompt: str, *, required: bool = False) -> dict[str, Any]:
    return {"key": key, "prompt": prompt, "type": "text", "required": required}


def photo(key: str, prompt: str) -> dict[str, Any]:
    return {"key": key, "prompt": prompt, "type": "photo_required"}


def pick(
    key: str,
    prompt: str,
    passing: tuple[str, ...],
    failing: tuple[str, ...],
    severity: Severity,
    remark: str,
) -> dict[str, Any]:
    choices = [{"value": v, "passes": True} for v in passing]
    choices += [{"value": v, "passes": False} for v in failing]
    return {
        "key": key,
        "prompt": prompt,
        "type": "choice",
        "choices": choices,
        "defects": {"fail": _defect(severity, remark)},
    }


_EXT_COMMON = (
    check(
        "location_access",
        "Mounted where it belongs, clear of obstructions and easy to reach",
        NC,
        "Extinguisher obstructed or not at its designated location",
    ),
    check(
        "signage",
        "Location sign present and visible from the approach",
        NCF,
        "Extinguisher location sign missing or hidden",
    ),
    check(
        "seal_pin",
        "Safety pin and tamper seal in place",
        NC,
        "Safety pin or tamper seal missing: the unit may have been used",
    ),
    check(
        "body_condition",
        "Body free of dents, corrosion and damage; labels legible",
        NC,
        "Extinguisher body damaged, corroded or label illegible",
    ),
    pick(
        "charge_state",
        "Charge indicator or weight",
        ("in_range",),
        ("low", "empty"),
        C,
        "Extinguisher not charged: unusable until recharged",
    ),
    check(
        "hose_nozzle",
        "Hose and nozzle fitted, clear and undamaged",
        NC,
        "Discharge hose or nozzle damaged or blocked",
    ),
)
_EXT_YEARLY = (
    *_EXT_COMMON,
    check(
        "operating_instructions",
        "Operating instructions face outwards and are readable",
        NCF,
        "Operating instructions not visible",
    ),
    reading(
        "gross_mass",
        "Gross mass compared with the mass stamped on the unit (loss)",
        "%",
        0,
        10,
        NC,
        "Mass loss above the acceptable limit: recharge or replace",
    ),
    check(
        "tag_updated",
        "Service tag punched or replaced for this service",
        NCF,
        "Service record tag not updated",
    ),
)

_FIRE_HOSE_REEL_BASE = (
    check(
        "access",
        "Reel unobstructed and its sign visible",
        NC,
        "Hose reel obstructed or its sign missing",
    ),
    check(
        "valve_operates",
        "Isolating valve opens and closes freely without leaks",
        C,
        "Hose reel valve seized or leaking: no water at the nozzle",
    ),
    check(
        "hose_condition",
        "Hose run out fully: no cracks, kinks or perished sections",
        NC,
        "Hose damaged or perished",
    ),
    check(
        "rewound",
        "Hose rewound tidily and the reel swings freely",
        NCF,
        "Hose reel not left stowed correctly",
    ),
)

_FIRE_HYDRANT_BASE = (
    check(
        "access",
        "Hydrant accessible, marked, and its cover or cabinet in order",
        NC,
        "Hydrant obstructed, unmarked or its cabinet damaged",
    ),
    check(
        "valve_operates",
        "Landing valve turns freely and does not leak",
        C,
        "Hydrant valve seized or leaking",
    ),
)

_SPRINKLER_VALVE_SET_BASE = (
    check(
        "main_valves_open",
        "Main stop valves open and secured (strapped or monitored)",
        C,
        "Sprinkler main stop valve not fully open: system impaired",
    ),
    reading(
        "water_supply_pressure",
        "Water supply pressure gauge",
        "kPa",
        150,
        None,
        C,
        "Sprinkler water supply pressure low",
    ),
    check(
        "alarm_test",
        "Alarm test gives the local alarm and the brigade signal",
        C,
        "Sprinkler alarm did not sound or reach the monitoring service",
    ),
)

_FIRE_DETECTION_PANEL_BASE = (
    check(
        "normal_state",
        "Panel shows normal: no fault, isolation or disablement left on",
        NC,
        "Fire panel left in fault or with isolations",
    ),
    check(
        "brigade_signal",
        "Test alarm reaches the monitoring service",
        C,
        "Alarm signal to the fire brigade or monitoring service failed",
    ),
)

_EMERGENCY_LIGHT_BASE = (
    check(
        "lights_on_mains_fail",
        "Lights when its normal supply is cut",
        C,
        "Emergency light does not light on loss of supply",
    ),
    reading(
        "duration_minutes",
        "Minutes lit on battery during the discharge test",
        "min",
        90,
        None,
        C,
        "Emergency light battery duration below the minimum",
    ),
    check(
        "charging_indicator",
        "Charging indicator on once the supply is restored",
        NC,
        "Emergency light not charging",
    ),
    check(
        "clean_undamaged",
        "Diffuser clean, fitting secure and undamaged",
        NCF,
        "Emergency light dirty or damaged",
    ),
)

_EXIT_SIGN_BASE = (
    check(
        "lit_on_mains_fail",
        "Stays lit when its normal supply is cut",
        C,
        "Exit sign goes dark on loss of supply",
    ),
    reading(
        "duration_minutes",
        "Minutes lit on battery during the discharge test",
        "min",
        90,
        None,
        C,
        "Exit sign battery duration below the minimum",
    ),
    check(
        "legible",
        "Pictogram legible from the approach, arrow pointing the right way",
        NC,
        "Exit sign illegible or pointing the wrong way",
    ),
)

_FIRE_DOOR_BASE = (
    check(
        "self_closes",
        "Closes and latches by itself from fully open",
        C,
        "Door does not self-close and latch",
    ),
    check(
        "not_held_open",
        "Not wedged or held open other than by an approved device",
        C,
        "Door held open by an unapproved means",
    ),
    reading(
        "max_gap",
        "Largest gap between leaf and frame or floor",
        "mm",
        0,
        10,
        NC,
        "Door gaps exceed the acceptable clearance",
    ),
)

CATALOGUE: tuple[ShippedRule, ...] = (
    ShippedRule(
        code="AS1851-EXT-6M",
        version="1.0.0",
        title="Portable fire extinguisher: six-monthly inspection",
        standard=AS1851,
        clause="Section 10",
        asset_type=AssetType.fire_extinguisher,
        frequency=Frequency.six_monthly,
        items=_EXT_COMMON,
        description="Visual inspection of a portable extinguisher and its installation.",
    ),
    ShippedRule(
        code="AS1851-EXT-12M",
        version="1.0.0",
        title="Portable fire extinguisher: yearly service",
        standard=AS1851,
        clause="Section 10",
        asset_type=AssetType.fire_extinguisher,
        frequency=Frequency.yearly,
        items=_EXT_YEARLY,
        description="The six-monthly checks plus a mass check and the service tag.",
    ),
    ShippedRule(
        code="AS1851-EXT-5Y",
        version="1.0.0",
        title="Portable fire extinguisher: five-yearly pressure test",
        standard=AS1851,
        clause="Section 10",
        asset_type=AssetType.fire_extinguisher,
        frequency=Frequency.five_yearly,
        items=(
            *_EXT_YEARLY,
            check(
                "emptied_inspected",
                "Emptied and the inside of the cylinder inspected",
                NC,
                "Internal inspection not possible or corrosion found",
            ),
            reading(
                "test_pressure",
                "Hydrostatic test pressure held",
                "kPa",
                2500,
                None,
                C,
                "Cylinder failed or was not taken to its test pressure: remove from service",
            ),
            check(
                "recharged",
                "Refilled, re-pressurised and re-sealed after the test",
                C,
                "Extinguisher not returned to a charged state after the test",
            ),
            photo("test_stamp", "Photo of the test date stamp or label"),
        ),
        description="Pressure (hydrostatic) test of the cylinder, then refill.",
    ),
    ShippedRule(
        code="AS1851-BLANKET-6M",
        version="1.0.0",
        title="Fire blanket: six-monthly inspection",
        standard=AS1851,
        clause="Section 11",
        asset_type=AssetType.fire_blanket,
        frequency=Frequency.six_monthly,
        items=(
            check(
                "location_access",
                "Mounted at its location and easy to reach",
                NC,
                "Fire blanket obstructed or missing from its location",
            ),
            check(
                "container",
                "Container intact and the release tapes can be pulled",
                NC,
                "Fire blanket container damaged or release tapes unusable",
            ),
            check("signage", "Sign present and visible", NCF, "Fire blanket sign missing"),
        ),
    ),
    ShippedRule(
        code="AS1851-HOSEREEL-6M",
        version="1.0.0",
        title="Fire hose reel: six-monthly inspection",
        standard=AS1851,
        clause="Section 9",
        asset_type=AssetType.fire_hose_reel,
        frequency=Frequency.six_monthly,
        items=(
            *_FIRE_HOSE_REEL_BASE,
            check("nozzle", "Nozzle shuts off and gives a spray and a jet", NC, "Nozzle faulty"),
        ),
    ),
    ShippedRule(
        code="AS1851-HOSEREEL-12M",
        version="1.0.0",
        title="Fire hose reel: yearly flow test",
        standard=AS1851,
        clause="Section 9",
        asset_type=AssetType.fire_hose_reel,
        frequency=Frequency.yearly,
        items=(
            *_FIRE_HOSE_REEL_BASE,
            reading(
                "flow_rate",
                "Flow at the nozzle with the valve fully open",
                "L/min",
                24,
                None,
                C,
                "Hose reel flow below the minimum",
            ),
        ),
    ),
    ShippedRule(
        code="AS1851-HYDRANT-6M",
        version="1.0.0",
        title="Fire hydrant: six-monthly inspection",
        standard=AS1851,
        clause="Section 4",
        asset_type=AssetType.fire_hydrant,
        frequency=Frequency.six_monthly,
        items=(
            *_FIRE_HYDRANT_BASE,
            check(
                "caps_couplings",
                "Blank caps fitted and couplings undamaged",
                NC,
                "Hydrant cap missing or coupling damaged",
            ),
        ),
    ),
    ShippedRule(
        code="AS1851-HYDRANT-12M",
        version="1.0.0",
        title="Fire hydrant: yearly flow and pressure test",
        standard=AS1851,
        clause="Section 4",
        asset_type=AssetType.fire_hydrant,
        frequency=Frequency.yearly,
        items=(
            *_FIRE_HYDRANT_BASE,
            reading(
                "residual_pressure",
                "Residual pressure while flowing",
                "kPa",
                250,
                None,
                C,
                "Hydrant pressure below the system's design requirement",
            ),
            reading(
                "flow_rate",
                "Flow while testing",
                "L/s",
                10,
                None,
                C,
                "Hydrant flow below the system's design requirement",
            ),
            note("test_outlet", "Which outlet was flowed, and where the water went"),
        ),
    ),
    ShippedRule(
        code="AS1851-SPRINKLER-1M",
        version="1.0.0",
        title="Sprinkler alarm valve set: monthly test",
        standard=AS1851,
        clause="Section 2",
        asset_type=AssetType.sprinkler_valve_set,
        frequency=Frequency.monthly,
        items=(
            *_SPRINKLER_VALVE_SET_BASE,
            reading(
                "installation_pressure",
                "Installation pressure gauge",
                "kPa",
                150,
                None,
                NC,
                "Sprinkler installation pressure low",
            ),
            check(
                "block_plan",
                "Block plan and valve labels present",
                NCF,
                "Sprinkler block plan or valve labels missing",
            ),
        ),
    ),
    ShippedRule(
        code="AS1851-SPRINKLER-12M",
        version="1.0.0",
        title="Sprinkler alarm valve set: yearly service",
        standard=AS1851,
        clause="Section 2",
        asset_type=AssetType.sprinkler_valve_set,
        frequency=Frequency.yearly,
        items=(
            *_SPRINKLER_VALVE_SET_BASE,
            reading(
                "drain_test_pressure",
                "Pressure held during the main drain test",
                "kPa",
                100,
                None,
                C,
                "Main drain test shows an impaired supply",
            ),
            check(
                "spare_heads",
                "Spare sprinkler heads and spanner in the cabinet",
                NCF,
                "Spare sprinkler heads or spanner missing",
            ),
            check(
                "heads_unobstructed",
                "Sampled heads unpainted, undamaged and clear of storage",
                NC,
                "Sprinkler heads obstructed, painted or damaged",
            ),
        ),
    ),
    ShippedRule(
        code="AS1851-PUMP-1M",
        version="1.0.0",
        title="Fire pump set: monthly run test",
        standard=AS1851,
        clause="Section 3",
        asset_type=AssetType.fire_pump,
        frequency=Frequency.monthly,
        items=(
            check(
                "starts_automatically",
                "Pump starts on a simulated pressure drop",
                C,
                "Fire pump failed to start automatically",
            ),
            reading(
                "run_minutes",
                "Minutes run under test",
                "min",
                5,
                None,
                NC,
                "Fire pump not run long enough to prove it",
            ),
            reading(
                "churn_pressure",
                "Discharge pressure at no flow",
                "kPa",
                300,
                None,
                C,
                "Fire pump pressure below its design value",
            ),
            check(
                "no_leaks_overheating",
                "No abnormal noise, leaks or overheating",
                NC,
                "Fire pump leaking, noisy or overheating",
            ),
            pick(
                "fuel_level",
                "Fuel level (diesel sets)",
                ("full", "not_applicable"),
                ("low",),
                C,
                "Diesel fire pump fuel low",
            ),
        ),
    ),
    ShippedRule(
        code="AS1851-FIP-1M",
        version="1.0.0",
        title="Fire indicator panel: monthly test",
        standard=AS1851,
        clause="Section 6",
        asset_type=AssetType.fire_detection_panel,
        frequency=Frequency.monthly,
        items=(
            *_FIRE_DETECTION_PANEL_BASE,
            check(
                "power_supplies",
                "Mains and battery supplies healthy",
                C,
                "Fire panel power supply failed",
            ),
            check(
                "occupant_warning",
                "Occupant warning sounds when tested",
                C,
                "Occupant warning failed to operate",
            ),
            check(
                "logbook",
                "Event log and zone block plan up to date",
                NCF,
                "Panel logbook or zone block plan not up to date",
            ),
        ),
    ),
    ShippedRule(
        code="AS1851-FIP-12M",
        version="1.0.0",
        title="Fire indicator panel: yearly service",
        standard=AS1851,
        clause="Section 6",
        asset_type=AssetType.fire_detection_panel,
        frequency=Frequency.yearly,
        items=(
            *_FIRE_DETECTION_PANEL_BASE,
            reading(
                "battery_voltage",
                "Standby battery voltage under load",
                "V",
                24.0,
                28.5,
                C,
                "Standby batteries cannot carry the panel",
            ),
            check(
                "ancillary_functions",
                "Ancillary controls (door release, air handling, lift homing) operate on alarm",
                NC,
                "An ancillary function did not operate",
            ),
            check(
                "every_zone",
                "Every zone tested to alarm at the panel",
                C,
                "A detection zone did not report an alarm",
            ),
            note("battery_date", "Date written on the standby batteries"),
        ),
    ),
    ShippedRule(
        code="AS1851-SMOKEDET-12M",
        version="1.0.0",
        title="Smoke detector: yearly functional test",
        standard=AS1851,
        clause="Section 6",
        asset_type=AssetType.smoke_detector,
        frequency=Frequency.yearly,
        items=(
            check(
                "responds",
                "Responds to test smoke and reports at the panel",
                C,
                "Smoke detector did not respond to test",
            ),
            check(
                "indicator", "Indicator lamp lights on alarm", NC, "Detector alarm indicator faulty"
            ),
            check(
                "unobstructed",
                "Free of paint, covers, dust and nearby obstructions",
                NC,
                "Smoke detector covered, painted or obstructed",
            ),
        ),
    ),
    ShippedRule(
        code="AS1851-HEATDET-12M",
        version="1.0.0",
        title="Heat detector: yearly functional test",
        standard=AS1851,
        clause="Section 6",
        asset_type=AssetType.heat_detector,
        frequency=Frequency.yearly,
        items=(
            check(
                "responds",
                "Responds to a heat source and reports at the panel",
                C,
                "Heat detector did not respond to test",
            ),
            check(
                "unobstructed",
                "Free of paint, covers and damage",
                NC,
                "Heat detector covered, painted or damaged",
            ),
        ),
    ),
    ShippedRule(
        code="AS1851-EWIS-12M",
        version="1.0.0",
        title="Emergency warning and intercommunication system: yearly service",
        standard=AS1851,
        clause="Section 6",
        asset_type=AssetType.ewis,
        frequency=Frequency.yearly,
        items=(
            check(
                "alert_evac_tones",
                "Alert and evacuation tones play in every zone",
                C,
                "Warning tones did not play in a zone",
            ),
            check(
                "pa_microphone",
                "Public address from the master panel is intelligible",
                NC,
                "Public address unclear or inoperative",
            ),
            check(
                "wardens_phones",
                "Warden intercom phones call the master panel",
                NC,
                "A warden intercom phone failed",
            ),
            reading(
                "battery_voltage",
                "Standby battery voltage under load",
                "V",
                24.0,
                28.5,
                C,
                "Warning system standby batteries cannot carry the system",
            ),
        ),
    ),
    ShippedRule(
        code="AS2293-EMLIGHT-6M",
        version="1.0.0",
        title="Emergency light: six-monthly discharge test",
        standard=AS2293,
        clause="Section 2",
        asset_type=AssetType.emergency_light,
        frequency=Frequency.six_monthly,
        items=(*_EMERGENCY_LIGHT_BASE,),
    ),
    ShippedRule(
        code="AS2293-EMLIGHT-12M",
        version="1.0.0",
        title="Emergency light: yearly service",
        standard=AS2293,
        clause="Section 2",
        asset_type=AssetType.emergency_light,
        frequency=Frequency.yearly,
        items=(
            *_EMERGENCY_LIGHT_BASE,
            check(
                "labelled",
                "Fitting labelled with its circuit and identifier",
                NCF,
                "Emergency light not labelled",
            ),
            note("battery_date", "Battery installation date, if marked"),
        ),
    ),
    ShippedRule(
        code="AS2293-EXIT-6M",
        version="1.0.0",
        title="Exit sign: six-monthly discharge test",
        standard=AS2293,
        clause="Section 2",
        asset_type=AssetType.exit_sign,
        frequency=Frequency.six_monthly,
        items=(*_EXIT_SIGN_BASE,),
    ),
    ShippedRule(
        code="AS2293-EXIT-12M",
        version="1.0.0",
        title="Exit sign: yearly service",
        standard=AS2293,
        clause="Section 2",
        asset_type=AssetType.exit_sign,
        frequency=Frequency.yearly,
        items=(
            *_EXIT_SIGN_BASE,
            check(
                "labelled",
                "Fitting labelled with its circuit and identifier",
                NCF,
                "Exit sign not labelled",
            ),
        ),
    ),
    ShippedRule(
        code="AS1851-DOOR-6M",
        version="1.0.0",
        title="Fire or smoke door: six-monthly inspection",
        standard=AS1851,
        clause="Section 17",
        asset_type=AssetType.fire_door,
        frequency=Frequency.six_monthly,
        variants=(),
        items=(
            *_FIRE_DOOR_BASE,
            check(
                "leaf_frame",
                "Leaf, frame and hardware undamaged, no unapproved holes",
                NC,
                "Door leaf, frame or hardware damaged or altered",
            ),
            check("signage", "Required sign present on the door", NCF, "Door sign missing"),
        ),
    ),
    ShippedRule(
        code="AS1851-DOOR-12M",
        version="1.0.0",
        title="Fire or smoke door: yearly survey",
        standard=AS1851,
        clause="Section 17",
        asset_type=AssetType.fire_door,
        frequency=Frequency.yearly,
        items=(
            *_FIRE_DOOR_BASE,
            check(
                "seals",
                "Smoke seals and intumescent strips present and intact",
                NC,
                "Door seals missing or damaged",
            ),
            check(
                "compliance_tag",
                "Door and frame compliance tags present and legible",
                NCF,
                "Door compliance tag missing or illegible",
            ),
            check(
                "hold_open_release",
                "Hold-open devices release on alarm",
                C,
                "Door hold-open device did not release on alarm",
            ),
            photo("door_photo", "Photo of the door from the approach side"),
        ),
    ),
    ShippedRule(
        code="AS1851-SMOKEDAMPER-12M",
        version="1.0.0",
        title="Smoke damper: yearly operation test",
        standard=AS1851,
        clause="Section 13",
        asset_type=AssetType.smoke_damper,
        frequency=Frequency.yearly,
        items=(
            check(
                "operates_on_alarm",
                "Moves to its smoke-control position on alarm",
                C,
                "Smoke damper did not operate on alarm",
            ),
            check("resets", "Returns to normal once reset", NC, "Smoke damper did not reset"),
            check(
                "access_panel",
                "Access panel present and labelled",
                NCF,
                "Damper access panel missing or unlabelled",
            ),
        ),
    ),
    ShippedRule(
        code="AS1851-FIREDAMPER-12M",
        version="1.0.0",
        title="Fire damper: yearly inspection",
        standard=AS1851,
        clause="Section 17",
        asset_type=AssetType.fire_damper,
        frequency=Frequency.yearly,
        items=(
            check(
                "closes_fully",
                "Closes fully when its fusible link is released",
                C,
                "Fire damper did not close fully",
            ),
            check(
                "fusible_link",
                "Fusible link intact, rated and refitted",
                NC,
                "Fire damper fusible link missing or wrong rating",
            ),
            check(
                "access_panel",
                "Access panel present and labelled",
                NCF,
                "Damper access panel missing or unlabelled",
            ),
        ),
    ),
    ShippedRule(
        code="AS1851-GENERAL-12M",
        version="1.0.0",
        title="Other fire safety equipment: yearly visual inspection",
        standard=AS1851,
        clause="Section 1",
        asset_type=AssetType.other,
        frequency=Frequency.yearly,
        items=(
            check(
                "present_accessible",
                "Present, accessible and identified",
                NC,
                "Equipment missing, obstructed or unidentified",
            ),
            check(
                "condition",
                "No visible damage, corrosion or tampering",
                NC,
                "Equipment damaged or tampered with",
            ),
            note("what_was_checked", "What was checked, in a sentence", required=True),
            pick(
                "recommend_specialist",
                "Does it need a specialist service?",
                ("no",),
                ("yes",),
                REC,
                "Specialist service recommended",
            ),
        ),
        description="A catch-all for register items no specific rule covers.",
    ),
)
