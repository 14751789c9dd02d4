"""The inject form's catalog: actions per version, skeletons, the guide's scenarios."""

from __future__ import annotations

import json

import pytest

from oye_api.dashboard.catalog import catalog, skeleton
from oye_shared.schemas import VERSIONS, csms_to_charger_actions, validate_request

pytestmark = pytest.mark.unit


def test_the_actions_of_each_version_are_those_a_charger_takes() -> None:
    """What the relay would inject, no more (no BootNotification, no SEND)."""
    versions = catalog()["versions"]
    for version in VERSIONS:
        assert set(versions[version]["actions"]) == csms_to_charger_actions(version)
        assert set(versions[version]["templates"]) == set(versions[version]["actions"])
    assert "GetVariables" not in versions["1.6"]["actions"]


def test_every_scenario_is_valid_for_each_version_it_is_offered_for() -> None:
    """A template never causes a 422 by itself."""
    for scenario in catalog()["scenarios"]:
        for version in scenario["versions"]:
            assert not validate_request(version, scenario["action"], scenario["payload"]), (
                scenario["id"],
                version,
            )


def test_the_guides_scenarios_are_offered_for_16_and_their_counterparts_for_201() -> None:
    """A, B, C, clearing and the composite schedule, in each version's own shape."""
    offered = {s["id"]: s["versions"] for s in catalog()["scenarios"]}
    for key in (
        "scenario-a-grid-limit",
        "scenario-b-time-of-use",
        "scenario-c-throttle-session",
        "clear-profile",
        "get-composite-schedule",
        "get-configuration",
        "change-configuration",
    ):
        assert offered[key] == ["1.6"], key
        counterpart = f"{key}-2"
        if counterpart in offered:
            assert "2.0.1" in offered[counterpart], counterpart
    assert "2.0.1" in offered["scenario-a-grid-limit-2"]


def test_a_skeleton_has_the_required_fields_with_placeholders() -> None:
    """Required properties only, through $ref, the first enum value, one required item."""
    schema = {
        "definitions": {"Unit": {"type": "string", "enum": ["W", "A"]}},
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "unit": {"$ref": "#/definitions/Unit"},
            "items": {"type": "array", "minItems": 1, "items": {"type": "boolean"}},
            "optional": {"type": "string"},
            "customData": {"type": "object"},
        },
        "required": ["id", "unit", "items", "customData"],
    }
    assert skeleton(schema) == {"id": 0, "unit": "W", "items": [False]}


def test_the_catalog_is_plain_json() -> None:
    """It is served as it is."""
    assert json.loads(json.dumps(catalog())) == catalog()
