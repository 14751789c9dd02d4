"""What the dashboard's inject form offers: actions per OCPP version and payload templates. Pure.

* **Actions**: those a CSMS sends to a charger (the only ones the relay injects), per
  version, from :mod:`oye_shared.schemas`.
* **A skeleton per action**: the required fields of its request schema, filled with
  placeholders (the first enum value, 0, "", one array item where one is required).
* **Scenarios**: the Smart Charging Guide's requests (the API's OpenAPI examples,
  :data:`oye_api.examples.INJECT_EXAMPLES`) and their OCPP 2.0.1/2.1 counterparts. Each is
  offered for exactly the versions whose schema it passes, so a template never produces a
  422 by itself.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from oye_api.examples import INJECT_EXAMPLES
from oye_shared.schemas import VERSIONS, Version, csms_to_charger_actions, validate_request

_SCHEMA_DIRS: dict[Version, str] = {"1.6": "v16", "2.0.1": "v201", "2.1": "v21"}
#: Properties never put in a skeleton (vendor extensions).
_SKIPPED = frozenset({"customData"})
_MAX_DEPTH = 8


def _profile_201(
    profile_id: int,
    purpose: str,
    kind: str,
    periods: list[dict[str, Any]],
    *,
    stack_level: int = 0,
    transaction_id: str | None = None,
) -> dict[str, Any]:
    profile: dict[str, Any] = {"id": profile_id, "stackLevel": stack_level}
    profile |= {"chargingProfilePurpose": purpose, "chargingProfileKind": kind}
    if transaction_id is not None:
        profile["transactionId"] = transaction_id
    profile["chargingSchedule"] = [
        {"id": profile_id, "chargingRateUnit": "A", "chargingSchedulePeriod": periods}
    ]
    return profile


#: The guide's scenarios for OCPP 2.0.1 and 2.1 (EVSE ids, a list of schedules, string
#: transaction ids, the Get/SetVariables device model instead of 1.6's configuration keys).
SCENARIOS_201: dict[str, tuple[str, dict[str, Any]]] = {
    "scenario-a-grid-limit-2": (
        "A: limit the whole charger to 32 A (ChargingStationMaxProfile)",
        {
            "action": "SetChargingProfile",
            "payload": {
                "evseId": 0,
                "chargingProfile": _profile_201(
                    1, "ChargingStationMaxProfile", "Absolute", [{"startPeriod": 0, "limit": 32.0}]
                ),
            },
        },
    ),
    "scenario-b-time-of-use-2": (
        "B: 6 A for the first 8 hours of every session, then 32 A (TxDefaultProfile)",
        {
            "action": "SetChargingProfile",
            "payload": {
                "evseId": 1,
                "chargingProfile": _profile_201(
                    2,
                    "TxDefaultProfile",
                    "Relative",
                    [{"startPeriod": 0, "limit": 6.0}, {"startPeriod": 28800, "limit": 32.0}],
                ),
            },
        },
    ),
    "scenario-c-throttle-session-2": (
        "C: throttle transaction 12345 to 10 A now (TxProfile)",
        {
            "action": "SetChargingProfile",
            "payload": {
                "evseId": 1,
                "chargingProfile": _profile_201(
                    3,
                    "TxProfile",
                    "Relative",
                    [{"startPeriod": 0, "limit": 10.0}],
                    stack_level=1,
                    transaction_id="12345",
                ),
            },
        },
    ),
    "clear-profile-2": (
        "Clear charging profile 1",
        {"action": "ClearChargingProfile", "payload": {"chargingProfileId": 1}},
    ),
    "get-composite-schedule-2": (
        "The active limit for the next hour (GetCompositeSchedule)",
        {
            "action": "GetCompositeSchedule",
            "payload": {"duration": 3600, "evseId": 0, "chargingRateUnit": "A"},
        },
    ),
    "get-variables-2": (
        "Is smart charging enabled? (GetVariables)",
        {
            "action": "GetVariables",
            "payload": {
                "getVariableData": [
                    {"component": {"name": "SmartChargingCtrlr"}, "variable": {"name": "Enabled"}}
                ]
            },
        },
    ),
}


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        return _resolve(target, root)
    return schema


def skeleton(schema: dict[str, Any], root: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """A placeholder value for ``schema``: objects with their required properties only."""
    root = schema if root is None else root
    schema = _resolve(schema, root)
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if depth > _MAX_DEPTH:
        return None
    if kind == "object":
        properties = schema.get("properties", {})
        return {
            name: skeleton(properties.get(name, {}), root, depth + 1)
            for name in schema.get("required", [])
            if name not in _SKIPPED
        }
    if kind == "array":
        if schema.get("minItems", 0) >= 1:
            return [skeleton(schema.get("items", {}), root, depth + 1)]
        return []
    if kind in ("integer", "number"):
        return 0
    if kind == "boolean":
        return False
    if kind == "string":
        return ""
    return None


def _request_schema(version: Version, action: str) -> dict[str, Any]:
    name = f"{action}.json" if version == "1.6" else f"{action}Request.json"
    path = resources.files("ocpp") / _SCHEMA_DIRS[version] / "schemas" / name
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def _scenario_list() -> list[dict[str, Any]]:
    named: list[tuple[str, str, dict[str, Any]]] = [
        (key, example.get("summary") or key, dict(example.get("value") or {}))
        for key, example in INJECT_EXAMPLES.items()
    ]
    named += [(key, title, value) for key, (title, value) in SCENARIOS_201.items()]
    scenarios = []
    for key, title, value in named:
        action, payload = value.get("action"), value.get("payload")
        if not isinstance(action, str) or not isinstance(payload, dict):
            continue
        if value.get("validate") is False:
            continue  # vendor-specific, sent unvalidated: not a template for a version
        versions = [
            version
            for version in VERSIONS
            if action in csms_to_charger_actions(version)
            and not validate_request(version, action, payload)
        ]
        if not versions:
            continue
        options = {k: value[k] for k in ("collect", "wait", "timeout") if k in value}
        scenarios.append(
            {
                "id": key,
                "title": title,
                "action": action,
                "payload": payload,
                "options": options,
                "versions": versions,
            }
        )
    return scenarios


@cache
def catalog() -> dict[str, Any]:
    """``{"versions": {v: {"actions": [...], "templates": {action: payload}}},
    "scenarios": [{"id", "title", "action", "payload", "options", "versions"}]}``."""
    versions: dict[str, Any] = {}
    for version in VERSIONS:
        actions = sorted(csms_to_charger_actions(version))
        versions[version] = {
            "actions": actions,
            "templates": {action: skeleton(_request_schema(version, action)) for action in actions},
        }
    return {"versions": versions, "scenarios": _scenario_list()}
