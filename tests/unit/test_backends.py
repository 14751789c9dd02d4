"""Secondary backends' policies, ownership conflicts and the proxy's default answers (pure)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from oye_shared.backends import Policy, SecondaryBackend, decide, policy_keys
from oye_shared.default_answers import default_response
from oye_shared.ownership import conflicts
from oye_shared.schemas import csms_to_charger_actions, validate_response
from oye_shared.settings import SettingsError, load_settings


def backend(name: str = "ha", **fields: object) -> SecondaryBackend:
    return SecondaryBackend.model_validate({"name": name, "url": "ws://ha.local/ocpp", **fields})


def test_a_secondary_is_read_only_by_default() -> None:
    """Reads are forwarded; every other command is answered by the proxy."""
    assert decide({}, "GetConfiguration", {}, secondary=True) is Policy.FORWARD
    assert decide({}, "GetVariables", {"getVariableData": []}, secondary=True) is Policy.FORWARD
    assert decide({}, "TriggerMessage", {}, secondary=True) is Policy.FORWARD
    assert decide({}, "RemoteStartTransaction", {"idTag": "x"}, secondary=True) is Policy.ANSWER
    assert decide({}, "Reset", {"type": "Soft"}, secondary=True) is Policy.ANSWER


def test_the_primary_forwards_everything_by_default() -> None:
    """Without a policy the primary behaves as without secondaries."""
    assert decide({}, "RemoteStartTransaction", {}, secondary=False) is Policy.FORWARD
    assert decide({"Reset": Policy.REJECT}, "Reset", {}, secondary=False) is Policy.REJECT


def test_the_most_specific_policy_key_wins() -> None:
    """A purpose or a configuration key beats the action, which beats the default."""
    policy = {
        "SetChargingProfile": Policy.REJECT,
        "SetChargingProfile:TxDefaultProfile": Policy.FORWARD,
    }
    tx_default = {
        "connectorId": 0,
        "csChargingProfiles": {"chargingProfilePurpose": "TxDefaultProfile"},
    }
    max_profile = {
        "connectorId": 0,
        "csChargingProfiles": {"chargingProfilePurpose": "ChargePointMaxProfile"},
    }
    assert decide(policy, "SetChargingProfile", tx_default, secondary=True) is Policy.FORWARD
    assert decide(policy, "SetChargingProfile", max_profile, secondary=True) is Policy.REJECT


def test_a_call_about_several_variables_is_forwarded_only_when_each_is() -> None:
    """SetVariables of an owned and a foreign variable is not forwarded."""
    policy = {"SetVariables:OCPPCommCtrlr.HeartbeatInterval": Policy.FORWARD}

    def item(component: str, variable: str) -> dict[str, object]:
        return {
            "component": {"name": component},
            "variable": {"name": variable},
            "attributeValue": "1",
        }

    one = {"setVariableData": [item("OCPPCommCtrlr", "HeartbeatInterval")]}
    two = {"setVariableData": [item("OCPPCommCtrlr", "HeartbeatInterval"), item("X", "Y")]}
    assert policy_keys("SetVariables", two) == [
        "SetVariables:OCPPCommCtrlr.HeartbeatInterval",
        "SetVariables:X.Y",
    ]
    assert decide(policy, "SetVariables", one, secondary=True) is Policy.FORWARD
    assert decide(policy, "SetVariables", two, secondary=True) is Policy.ANSWER


def test_read_only_secondaries_never_conflict_with_the_primary() -> None:
    """The default configuration is valid."""
    assert conflicts({}, [backend("ha"), backend("evcc")]) == []


def test_a_secondary_that_forwards_remote_start_conflicts_with_the_primary() -> None:
    """Both would own starting a transaction; the conflict names it and both backends."""
    problems = conflicts({}, [backend("ha", policy={"RemoteStartTransaction": "forward"})])
    assert problems == [
        "RemoteStartTransaction/RequestStartTransaction is owned by both 'primary' and 'ha': "
        "set it to answer or reject for one of them"
    ]


def test_ownership_moves_when_the_primary_gives_a_command_up() -> None:
    """The primary answering TxDefaultProfile lets one secondary own it, not two."""
    primary = {"SetChargingProfile:TxDefaultProfile": Policy.ANSWER}
    evcc = backend("evcc", policy={"SetChargingProfile:TxDefaultProfile": "forward"})
    assert conflicts(primary, [evcc]) == []
    other = backend("ha", policy={"SetChargingProfile": "forward"})
    problems = conflicts(primary, [evcc, other])
    assert any("TxDefaultProfile is owned by both 'evcc' and 'ha'" in p for p in problems)
    assert any("ChargePointMaxProfile is owned by both 'primary' and 'ha'" in p for p in problems)


def test_configuration_keys_conflict_only_when_shared() -> None:
    """ChangeConfiguration of one key by a secondary conflicts with the primary's any-key."""
    primary = {"ChangeConfiguration": Policy.ANSWER}
    ha = backend("ha", policy={"ChangeConfiguration:HeartbeatInterval": "forward"})
    evcc = backend("evcc", policy={"ChangeConfiguration:MeterValueSampleInterval": "forward"})
    assert conflicts(primary, [ha, evcc]) == []
    assert conflicts({}, [ha]) == [
        "ChangeConfiguration of 'HeartbeatInterval' is owned by both 'primary' and 'ha': "
        "set it to answer or reject for one of them"
    ]


def test_secondaries_for_different_chargers_do_not_conflict() -> None:
    """Ownership is per charger: disjoint lists share no charger."""
    primary = {"RemoteStartTransaction": Policy.REJECT, "RequestStartTransaction": Policy.REJECT}
    a = backend("a", chargers=["CP1"], policy={"RemoteStartTransaction": "forward"})
    b = backend("b", chargers=["CP2"], policy={"RemoteStartTransaction": "forward"})
    assert conflicts(primary, [a, b]) == []
    c = backend("c", chargers=["CP2", "CP3"], policy={"RequestStartTransaction": "forward"})
    assert len(conflicts(primary, [a, b, c])) == 1


def test_two_backends_with_one_name_are_refused() -> None:
    assert conflicts({}, [backend("ha"), backend("ha")]) == ["two backends are named 'ha'"]


def test_a_backend_needs_a_usable_name_url_and_credentials() -> None:
    """'primary' is taken; URLs are WebSocket; basic auth needs a password."""
    for fields in (
        {"name": "primary"},
        {"name": "has space"},
        {"url": "http://x"},
        {"auth": "basic"},
        {"policy": {"Reset": "maybe"}},
    ):
        with pytest.raises(ValidationError):
            SecondaryBackend.model_validate({"name": "ha", "url": "ws://x", **fields})


def test_settings_read_secondaries_as_json_and_refuse_conflicts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OYE_SECONDARY_BACKENDS seeds the backends; a conflict names itself at start."""
    monkeypatch.setenv("OYE_SECONDARY_BACKENDS", '[{"name": "ha", "url": "ws://ha.local/ocpp"}]')
    assert load_settings().secondary_backends[0].name == "ha"
    monkeypatch.setenv(
        "OYE_SECONDARY_BACKENDS",
        '[{"name": "ha", "url": "ws://h/o", "policy": {"RemoteStartTransaction": "forward"}}]',
    )
    with pytest.raises(SettingsError, match="owned by both 'primary' and 'ha'"):
        load_settings()


@pytest.mark.parametrize("version", ["1.6", "2.0.1", "2.1"])
def test_every_default_answer_is_valid_for_its_schema(version: str) -> None:
    """The proxy's own answer to any CSMS command validates against the official schema."""
    for action in sorted(csms_to_charger_actions(version)):
        assert validate_response(version, action, default_response(version, action)) == [], action


def test_a_default_answer_says_the_command_was_not_carried_out() -> None:
    assert default_response("1.6", "RemoteStartTransaction") == {"status": "Rejected"}
    assert default_response("2.0.1", "RequestStartTransaction") == {"status": "Rejected"}
