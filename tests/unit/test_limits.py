"""The proxy's persistent-limit profiles: version-correct and schema-valid."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from oye_shared.limits import (
    LimitIds,
    clear_may_remove_ours,
    clear_profile,
    set_profile,
    stored_max_power,
    stored_value,
)
from oye_shared.schemas import validate_request

IDS = LimitIds(profile_id=9_000_001, stack_level=8)
NOW = datetime(2026, 6, 1, 12, 30, tzinfo=UTC)
VERSIONS = ["1.6", "2.0.1", "2.1"]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_power": 16},
        {"session_limit": 10.04},
        {"session_limit": 10, "transaction_id": 1234},
    ],
)
def test_every_built_profile_validates(version: str, kwargs: dict[str, float]) -> None:
    request = set_profile(version, IDS, now=NOW, **kwargs)  # type: ignore[arg-type]
    assert request.action == "SetChargingProfile"
    assert validate_request(version, request.action, request.payload) == []


def test_16_max_power_shape() -> None:
    payload = set_profile("1.6", IDS, max_power=16, now=NOW).payload
    assert payload == {
        "connectorId": 0,
        "csChargingProfiles": {
            "chargingProfileId": 9_000_001,
            "stackLevel": 8,
            "chargingProfilePurpose": "ChargePointMaxProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}],
                "startSchedule": "2026-06-01T00:00:00Z",
            },
        },
    }


def test_201_session_limits_shape() -> None:
    default = set_profile("2.0.1", IDS, session_limit=10, now=NOW).payload
    assert default["evseId"] == 0
    profile = default["chargingProfile"]
    assert profile["id"] == 9_000_002
    assert profile["chargingProfilePurpose"] == "TxDefaultProfile"
    assert profile["chargingProfileKind"] == "Relative"
    assert profile["chargingSchedule"] == [
        {
            "id": 1,
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10.0}],
        }
    ]
    tx = set_profile("2.0.1", IDS, session_limit=10, transaction_id="abc", connector=2).payload
    assert tx["evseId"] == 2
    assert tx["chargingProfile"]["transactionId"] == "abc"
    assert tx["chargingProfile"]["chargingProfilePurpose"] == "TxProfile"


def test_16_tx_profile_carries_an_integer_transaction_id() -> None:
    payload = set_profile("1.6", IDS, session_limit=6, transaction_id="77").payload
    assert payload["connectorId"] == 1
    assert payload["csChargingProfiles"]["transactionId"] == 77


def test_exactly_one_limit() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        set_profile("1.6", IDS)
    with pytest.raises(ValueError, match="exactly one"):
        set_profile("1.6", IDS, max_power=1, session_limit=1)


@pytest.mark.parametrize("version", VERSIONS)
def test_clear_names_only_the_reserved_id(version: str) -> None:
    for profile_id in IDS.all_ids:
        request = clear_profile(version, profile_id)
        assert request.action == "ClearChargingProfile"
        assert list(request.payload.values()) == [profile_id]
        assert validate_request(version, request.action, request.payload) == []


def test_each_kind_of_limit_has_its_own_reserved_id() -> None:
    ids = {
        set_profile("2.0.1", IDS, **kwargs).payload["chargingProfile"]["id"]
        for kwargs in (
            {"max_power": 1},
            {"session_limit": 1},
            {"session_limit": 1, "transaction_id": "t"},
        )
    }
    assert ids == set(IDS.all_ids)


@pytest.mark.parametrize(
    ("version", "payload", "removes"),
    [
        ("1.6", {}, True),
        ("1.6", {"id": 9_000_001}, True),
        ("1.6", {"id": 5}, False),
        ("1.6", {"chargingProfilePurpose": "ChargePointMaxProfile"}, True),
        ("1.6", {"chargingProfilePurpose": "TxDefaultProfile"}, False),
        ("1.6", {"connectorId": 1}, False),
        ("1.6", {"connectorId": 0, "stackLevel": 8}, True),
        ("1.6", {"stackLevel": 3}, False),
        ("2.0.1", {}, True),
        ("2.0.1", {"chargingProfileId": 9_000_001}, True),
        ("2.0.1", {"chargingProfileId": 1}, False),
        (
            "2.0.1",
            {"chargingProfileCriteria": {"chargingProfilePurpose": "ChargingStationMaxProfile"}},
            True,
        ),
        ("2.0.1", {"chargingProfileCriteria": {"chargingProfilePurpose": "TxProfile"}}, False),
        ("2.0.1", {"chargingProfileCriteria": {"evseId": 1}}, False),
    ],
)
def test_which_csms_clears_may_remove_ours(
    version: str, payload: dict[str, object], removes: bool
) -> None:
    assert clear_may_remove_ours(version, payload, IDS) is removes


def test_stored_value_round_trips() -> None:
    assert stored_max_power(stored_value(12.5)) == 12.5
    assert stored_max_power(None) is None
    assert stored_max_power(b"not json") is None
    assert stored_max_power(b'{"maxPower": true}') is None


@pytest.mark.parametrize("version", ["1.6", "2.0.1", "2.1"])
def test_the_failsafe_limit_is_a_valid_tx_default_profile_with_its_own_id(version: str) -> None:
    """The failsafe never shares an id with the owner's limits, and validates."""
    ids = LimitIds(9_000_001, 8)
    request = set_profile(version, ids, session_limit=10.0, failsafe=True)
    assert validate_request(version, request.action, request.payload) == []
    profile = request.payload["csChargingProfiles" if version == "1.6" else "chargingProfile"]
    assert profile["chargingProfilePurpose"] == "TxDefaultProfile"
    assert profile["chargingProfileId" if version == "1.6" else "id"] == ids.failsafe_id
    assert ids.failsafe_id not in (
        ids.profile_id,
        ids.session_id(bound=False),
        ids.session_id(bound=True),
    )
