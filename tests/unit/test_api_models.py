"""Config updates, charger status and the OpenAPI examples, without I/O."""

from __future__ import annotations

import json
from decimal import Decimal
from importlib import resources
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from oye_api.examples import INJECT_EXAMPLES
from oye_api.fleet import effective_state
from oye_api.proxy_config import ConfigUpdate
from oye_shared.inject import InjectRequest
from oye_shared.state import ChargerState, ChargerStatus

pytestmark = pytest.mark.unit


def test_config_update_keeps_only_the_keys_given() -> None:
    """A partial update changes only what the body names; null clears the CSMS URL."""
    update = ConfigUpdate.model_validate({"autoChargeEnabled": True, "targetCsmsUrl": None})
    assert update.changes() == {"auto_charge_enabled": True, "target_csms_url": None}


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ({"targetCsmsUrl": "http://csms.example"}, "targetCsmsUrl"),
        ({"targetCsmsUrl": "ws://"}, "targetCsmsUrl"),
        ({"csmsForwardingEnabled": "yes"}, "csmsForwardingEnabled"),
        ({"autoChargeEnabled": 1}, "autoChargeEnabled"),
        ({"defaultIdTag": ""}, "defaultIdTag"),
        ({"defaultIdTag": "x" * 21}, "defaultIdTag"),
        ({"defaultIdTag": None}, "defaultIdTag"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_config_values_name_their_key(body: dict[str, Any], key: str) -> None:
    """Every refused value is reported at its key."""
    with pytest.raises(ValidationError) as caught:
        ConfigUpdate.model_validate(body)
    assert [error["loc"] for error in caught.value.errors()] == [(key,)]


@pytest.mark.parametrize("url", ["ws://csms:9000/ocpp", "wss://csms.example.com/ocpp/v16"])
def test_websocket_urls_are_accepted(url: str) -> None:
    """ws:// and wss:// URLs are valid CSMS targets."""
    assert ConfigUpdate.model_validate({"targetCsmsUrl": url}).target_csms_url == url


def test_an_online_charger_on_a_dead_relay_is_offline() -> None:
    """ONLINE on a relay whose entry expired reads OFFLINE; on a live relay, ONLINE."""
    state = ChargerState(charge_point_id="CP1", status=ChargerStatus.ONLINE, relay="r1")
    assert effective_state(state, {"r1"}).status is ChargerStatus.ONLINE
    assert effective_state(state, {"r2"}).status is ChargerStatus.OFFLINE
    assert state.status is ChargerStatus.ONLINE  # the stored state is not changed


def _schema(version: str, action: str) -> dict[str, Any]:
    folder = resources.files("ocpp") / version / "schemas"
    name = f"{action}.json" if version == "v16" else f"{action}Request.json"
    schema: dict[str, Any] = json.loads((folder / name).read_text(), parse_float=Decimal)
    return schema


@pytest.mark.parametrize("name", sorted(INJECT_EXAMPLES))
def test_every_openapi_example_is_a_valid_injection(name: str) -> None:
    """Each example parses as an InjectRequest and its payload fits the official schema."""
    value = INJECT_EXAMPLES[name]["value"]
    request = InjectRequest.model_validate(value)
    if not request.validate_payload:
        return
    version = "v201" if request.action == "GetChargingProfiles" else "v16"
    payload = json.loads(json.dumps(request.payload), parse_float=Decimal)
    jsonschema.Draft4Validator(_schema(version, request.action)).validate(payload)
