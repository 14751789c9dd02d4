"""The offline responder: one valid answer for every charger-initiated action of every version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from oye_relay.offline import AnswerKind, OfflineAnswer, answered_actions, offline_answer
from oye_shared.frames import MessageType, parse_frame
from oye_shared.schemas import (
    Version,
    charger_to_csms_actions,
    csms_to_charger_actions,
    send_actions,
    validate_request,
    validate_response,
)

pytestmark = pytest.mark.unit

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
TX_16 = 2_000_000_001
T = "2025-06-01T12:00:00Z"
TX = "9a1c7e52-4f0b-4b8e-a3c2-0d5e6f7a8b9c"
HASH = {
    "hashAlgorithm": "SHA256",
    "issuerNameHash": "a1b2",
    "issuerKeyHash": "c3d4",
    "serialNumber": "0123",
}
SAMPLED = {
    "timestamp": T,
    "sampledValue": [{"value": 1234.5, "measurand": "Energy.Active.Import.Register"}],
}
COMPONENT = {
    "component": {"name": "EVSE", "evse": {"id": 1}},
    "variable": {"name": "AvailabilityState"},
}

REQUESTS_16: dict[str, dict[str, Any]] = {
    "Authorize": {"idTag": "OYE-REMOTE"},
    "BootNotification": {"chargePointVendor": "OYE", "chargePointModel": "Sim-1"},
    "DataTransfer": {"vendorId": "com.example", "messageId": "ping", "data": '{"a":1}'},
    "DiagnosticsStatusNotification": {"status": "Uploaded"},
    "FirmwareStatusNotification": {"status": "Installed"},
    "Heartbeat": {},
    "LogStatusNotification": {"status": "Uploaded", "requestId": 7},
    "MeterValues": {
        "connectorId": 1,
        "transactionId": TX_16,
        "meterValue": [{"timestamp": T, "sampledValue": [{"value": "1234.5", "unit": "Wh"}]}],
    },
    "SecurityEventNotification": {"type": "StartupOfTheDevice", "timestamp": T},
    "SignCertificate": {
        "csr": "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----"
    },
    "SignedFirmwareStatusNotification": {"status": "Installed", "requestId": 3},
    "StartTransaction": {
        "connectorId": 1,
        "idTag": "OYE-REMOTE",
        "meterStart": 125000,
        "timestamp": T,
    },
    "StatusNotification": {
        "connectorId": 1,
        "errorCode": "NoError",
        "status": "Preparing",
        "timestamp": T,
    },
    "StopTransaction": {
        "transactionId": TX_16,
        "meterStop": 130000,
        "timestamp": T,
        "reason": "Local",
    },
}

REQUESTS_201: dict[str, dict[str, Any]] = {
    "Authorize": {"idToken": {"idToken": "04A2B3C4", "type": "ISO14443"}},
    "BootNotification": {
        "chargingStation": {"model": "Sim-2", "vendorName": "OYE"},
        "reason": "PowerUp",
    },
    "ClearedChargingLimit": {"chargingLimitSource": "EMS", "evseId": 1},
    "DataTransfer": {"vendorId": "com.example", "messageId": "ping", "data": {"a": 1}},
    "FirmwareStatusNotification": {"status": "Installed", "requestId": 5},
    "Get15118EVCertificate": {
        "iso15118SchemaVersion": "urn:iso:15118:2:2013:MsgDef",
        "action": "Install",
        "exiRequest": "gAQ=",
    },
    "GetCertificateStatus": {"ocspRequestData": {**HASH, "responderURL": "http://ocsp.example"}},
    "Heartbeat": {},
    "LogStatusNotification": {"status": "Uploaded", "requestId": 7},
    "MeterValues": {"evseId": 1, "meterValue": [SAMPLED]},
    "NotifyChargingLimit": {"chargingLimit": {"chargingLimitSource": "EMS"}, "evseId": 1},
    "NotifyCustomerInformation": {"data": "no data", "seqNo": 0, "generatedAt": T, "requestId": 11},
    "NotifyDisplayMessages": {
        "requestId": 12,
        "messageInfo": [
            {"id": 1, "priority": "NormalCycle", "message": {"format": "UTF8", "content": "Hi"}}
        ],
    },
    "NotifyEVChargingNeeds": {
        "evseId": 1,
        "chargingNeeds": {
            "requestedEnergyTransfer": "AC_three_phase",
            "acChargingParameters": {
                "energyAmount": 20000,
                "evMinCurrent": 6,
                "evMaxCurrent": 32,
                "evMaxVoltage": 400,
            },
        },
    },
    "NotifyEVChargingSchedule": {
        "timeBase": T,
        "evseId": 1,
        "chargingSchedule": {
            "id": 1,
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}],
        },
    },
    "NotifyEvent": {
        "generatedAt": T,
        "seqNo": 0,
        "eventData": [
            {
                "eventId": 1,
                "timestamp": T,
                "trigger": "Delta",
                "actualValue": "Occupied",
                "eventNotificationType": "HardWiredNotification",
                **COMPONENT,
            }
        ],
    },
    "NotifyMonitoringReport": {
        "requestId": 13,
        "seqNo": 0,
        "generatedAt": T,
        "monitor": [
            {
                **COMPONENT,
                "variableMonitoring": [
                    {"id": 1, "transaction": False, "value": 1.0, "type": "Delta", "severity": 8}
                ],
            }
        ],
    },
    "NotifyReport": {
        "requestId": 14,
        "generatedAt": T,
        "seqNo": 0,
        "tbc": False,
        "reportData": [
            {**COMPONENT, "variableAttribute": [{"value": "Available", "mutability": "ReadOnly"}]}
        ],
    },
    "PublishFirmwareStatusNotification": {
        "status": "Published",
        "location": ["http://fw/1"],
        "requestId": 9,
    },
    "ReportChargingProfiles": {
        "requestId": 900001,
        "chargingLimitSource": "CSO",
        "evseId": 1,
        "tbc": False,
        "chargingProfile": [
            {
                "id": 100,
                "stackLevel": 0,
                "chargingProfilePurpose": "TxDefaultProfile",
                "chargingProfileKind": "Recurring",
                "recurrencyKind": "Daily",
                "chargingSchedule": [
                    {
                        "id": 1,
                        "startSchedule": "2025-06-01T00:00:00Z",
                        "duration": 86400,
                        "chargingRateUnit": "A",
                        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}],
                    }
                ],
            }
        ],
    },
    "ReservationStatusUpdate": {"reservationId": 4, "reservationUpdateStatus": "Expired"},
    "SecurityEventNotification": {"type": "StartupOfTheDevice", "timestamp": T},
    "SignCertificate": {
        "csr": "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----"
    },
    "StatusNotification": {
        "timestamp": T,
        "connectorStatus": "Occupied",
        "evseId": 1,
        "connectorId": 1,
    },
    "TransactionEvent": {
        "eventType": "Started",
        "timestamp": T,
        "triggerReason": "CablePluggedIn",
        "seqNo": 0,
        "transactionInfo": {"transactionId": TX, "chargingState": "EVConnected"},
        "evse": {"id": 1, "connectorId": 1},
    },
}

REQUESTS_21: dict[str, dict[str, Any]] = {
    **REQUESTS_201,
    "BatterySwap": {
        "eventType": "BatteryIn",
        "requestId": 21,
        "idToken": {"idToken": "04A2B3C4", "type": "ISO14443"},
        "batteryData": [{"evseId": 1, "serialNumber": "B-1", "soC": 80.5, "soH": 97}],
    },
    "ClosePeriodicEventStream": {"id": 1},
    # 2.1 made eventNotificationType a required part of every monitor.
    "NotifyMonitoringReport": REQUESTS_201["NotifyMonitoringReport"]
    | {
        "monitor": [
            {
                **COMPONENT,
                "variableMonitoring": [
                    {
                        "id": 1,
                        "transaction": False,
                        "value": 1.0,
                        "type": "Delta",
                        "severity": 8,
                        "eventNotificationType": "CustomMonitor",
                    }
                ],
            }
        ]
    },
    "GetCertificateChainStatus": {
        "certificateStatusRequests": [
            {"certificateHashData": HASH, "source": "OCSP", "urls": ["http://ocsp.example"]},
            {
                "certificateHashData": {**HASH, "serialNumber": "0456"},
                "source": "CRL",
                "urls": ["http://crl.example/a.crl"],
            },
        ]
    },
    "NotifyDERAlarm": {
        "controlType": "HVMustTrip",
        "gridEventFault": "OverVoltage",
        "timestamp": T,
    },
    "NotifyDERStartStop": {"controlId": "ctl-1", "started": True, "timestamp": T},
    "NotifyPeriodicEventStream": {
        "id": 1,
        "pending": 0,
        "basetime": T,
        "data": [{"t": 0, "v": "230.4"}],
    },
    "NotifyPriorityCharging": {"transactionId": TX, "activated": True},
    "NotifySettlement": {
        "pspRef": "psp-77",
        "status": "Settled",
        "settlementAmount": 12.34,
        "settlementTime": T,
        "transactionId": TX,
    },
    "OpenPeriodicEventStream": {
        "constantStreamData": {"id": 1, "variableMonitoringId": 3, "params": {"interval": 1}}
    },
    "PullDynamicScheduleUpdate": {"chargingProfileId": 300},
    "ReportDERControl": {"requestId": 22, "tbc": False},
    "VatNumberValidation": {"vatNumber": "NL123456789B01", "evseId": 1},
}

REQUESTS: dict[Version, dict[str, dict[str, Any]]] = {
    "1.6": REQUESTS_16,
    "2.0.1": REQUESTS_201,
    "2.1": REQUESTS_21,
}
CASES = [(version, action) for version, table in REQUESTS.items() for action in sorted(table)]


def answer(version: str, action: str, payload: dict[str, Any], **kwargs: Any) -> OfflineAnswer:
    """The offline answer with the test clock, interval and 1.6 transaction id."""
    options: dict[str, Any] = {"now": NOW, "heartbeat_interval": 300, "transaction_id": TX_16}
    return offline_answer(version, action, payload, **(options | kwargs))


@pytest.mark.parametrize("version", list(REQUESTS))
def test_the_sample_requests_cover_every_charger_initiated_action(version: Version) -> None:
    """There is one sample request per charger-initiated action, so no action goes untested."""
    assert set(REQUESTS[version]) == charger_to_csms_actions(version)


@pytest.mark.parametrize(("version", "action"), CASES)
def test_every_sample_request_is_valid_for_its_version(version: Version, action: str) -> None:
    """The sample requests are realistic: they pass the official request schema."""
    assert validate_request(version, action, REQUESTS[version][action]) == []


@pytest.mark.parametrize(("version", "action"), CASES)
def test_every_offline_answer_validates_against_the_official_response_schema(
    version: Version, action: str
) -> None:
    """Every charger CALL gets an answer its version's response schema accepts (SEND: none)."""
    result = answer(version, action, REQUESTS[version][action])
    if action in send_actions(version):
        assert result.kind is AnswerKind.NONE
        return
    assert result.kind is AnswerKind.RESULT, result
    assert result.payload is not None
    assert validate_response(version, action, result.payload) == []


@pytest.mark.parametrize(("version", "action"), CASES)
def test_answers_with_an_idtoken_that_is_refused_are_still_valid(
    version: Version, action: str
) -> None:
    """With a refusing policy every answer is still schema-valid."""
    result = answer(version, action, REQUESTS[version][action], authorize=lambda token: False)
    if result.payload is not None:
        assert validate_response(version, action, result.payload) == []


@pytest.mark.parametrize("version", list(REQUESTS))
def test_the_table_has_one_entry_per_charger_action_except_sends(version: Version) -> None:
    """Every charger-initiated CALL action has an entry; SEND actions have none."""
    expected = charger_to_csms_actions(version) - send_actions(version)
    assert answered_actions(version) == expected


def test_heartbeat_and_boot_give_now_in_utc_with_z() -> None:
    """currentTime is the given clock in UTC, written with Z, whatever the clock's zone."""
    cest = timezone(timedelta(hours=2))
    now = datetime(2025, 6, 1, 14, 0, 0, 250000, tzinfo=cest)
    beat = answer("1.6", "Heartbeat", {}, now=now)
    assert beat.payload == {"currentTime": "2025-06-01T12:00:00Z"}
    boot = answer("2.0.1", "BootNotification", REQUESTS_201["BootNotification"], now=now)
    assert boot.payload == {
        "currentTime": "2025-06-01T12:00:00Z",
        "interval": 300,
        "status": "Accepted",
    }


def test_boot_notification_gives_the_heartbeat_interval_it_is_told() -> None:
    """interval is the last value the CSMS gave, passed in by the caller."""
    boot = answer("1.6", "BootNotification", REQUESTS_16["BootNotification"], heartbeat_interval=90)
    assert boot.payload == {"status": "Accepted", "currentTime": T, "interval": 90}


def test_a_naive_clock_is_refused() -> None:
    """A datetime without a zone cannot be turned into UTC safely, so it is an error."""
    with pytest.raises(ValueError, match="timezone-aware"):
        answer("1.6", "Heartbeat", {}, now=datetime(2025, 6, 1, 12, 0))


def test_16_start_transaction_uses_the_given_transaction_id() -> None:
    """The 1.6 StartTransaction answer carries the caller's transaction id and the tag status."""
    result = answer("1.6", "StartTransaction", REQUESTS_16["StartTransaction"], transaction_id=42)
    assert result.payload == {"idTagInfo": {"status": "Accepted"}, "transactionId": 42}


@pytest.mark.parametrize("transaction_id", [None, 0, -1, 2**31])
def test_16_start_transaction_without_a_usable_id_is_a_caller_error(
    transaction_id: int | None,
) -> None:
    """Without a positive int32 transaction id the answer cannot be built."""
    with pytest.raises(ValueError, match="transaction id"):
        answer(
            "1.6",
            "StartTransaction",
            REQUESTS_16["StartTransaction"],
            transaction_id=transaction_id,
        )


def test_authorization_follows_the_given_policy() -> None:
    """Accepted or Invalid is the policy's decision, for 1.6 id tags and 2.x id tokens."""
    seen: list[str] = []

    def only_known(token: str) -> bool:
        seen.append(token)
        return token == "OYE-REMOTE"

    assert answer("1.6", "Authorize", {"idTag": "OYE-REMOTE"}, authorize=only_known).payload == {
        "idTagInfo": {"status": "Accepted"}
    }
    assert answer("1.6", "Authorize", {"idTag": "STRANGER"}, authorize=only_known).payload == {
        "idTagInfo": {"status": "Invalid"}
    }
    refused = answer("2.1", "Authorize", REQUESTS_21["Authorize"], authorize=only_known)
    assert refused.payload == {"idTokenInfo": {"status": "Invalid"}}
    start = answer("1.6", "StartTransaction", REQUESTS_16["StartTransaction"], authorize=only_known)
    assert start.payload == {"idTagInfo": {"status": "Accepted"}, "transactionId": TX_16}
    assert seen == ["OYE-REMOTE", "STRANGER", "04A2B3C4", "OYE-REMOTE"]


@pytest.mark.parametrize("version", ["2.0.1", "2.1"])
def test_transaction_event_adds_idtokeninfo_only_when_the_request_has_an_idtoken(
    version: Version,
) -> None:
    """E01.FR.12: idTokenInfo answers an idToken; without one the answer is empty."""
    plain = REQUESTS[version]["TransactionEvent"]
    assert answer(version, "TransactionEvent", plain).payload == {}
    with_token = plain | {"idToken": {"idToken": "04A2B3C4", "type": "ISO14443"}}
    accepted = answer(version, "TransactionEvent", with_token)
    assert accepted.payload == {"idTokenInfo": {"status": "Accepted"}}
    refused = answer(version, "TransactionEvent", with_token, authorize=lambda token: False)
    assert refused.payload == {"idTokenInfo": {"status": "Invalid"}}
    assert validate_response(version, "TransactionEvent", refused.payload or {}) == []


def test_vat_number_validation_echoes_vat_number_and_evse() -> None:
    """The VAT number (and EVSE) come back, Rejected: nobody can check them offline."""
    result = answer("2.1", "VatNumberValidation", {"vatNumber": "NL123456789B01", "evseId": 2})
    assert result.payload == {"vatNumber": "NL123456789B01", "evseId": 2, "status": "Rejected"}
    without_evse = answer("2.1", "VatNumberValidation", {"vatNumber": "DE1"})
    assert without_evse.payload == {"vatNumber": "DE1", "status": "Rejected"}


def test_an_echo_of_an_invalid_request_is_a_format_violation() -> None:
    """When the echoed data is missing, the answer is the 2.1 spelling FormatViolation."""
    result = answer("2.1", "VatNumberValidation", {"evseId": 2})
    assert result.kind is AnswerKind.ERROR
    assert result.error_code == "FormatViolation"
    assert "vatNumber" in result.error_description


def test_certificate_chain_status_echoes_each_request_as_failed_now() -> None:
    """Each certificateHashData and source comes back with status Failed and nextUpdate now."""
    request = REQUESTS_21["GetCertificateChainStatus"]
    result = answer("2.1", "GetCertificateChainStatus", request)
    assert result.payload == {
        "certificateStatus": [
            {
                "certificateHashData": item["certificateHashData"],
                "source": item["source"],
                "status": "Failed",
                "nextUpdate": T,
            }
            for item in request["certificateStatusRequests"]
        ]
    }


def test_a_send_is_never_answered() -> None:
    """NotifyPeriodicEventStream (2.1 SEND) gets no frame at all."""
    result = answer("2.1", "NotifyPeriodicEventStream", REQUESTS_21["NotifyPeriodicEventStream"])
    assert result.kind is AnswerKind.NONE
    assert result.frame("c1b2") is None


@pytest.mark.parametrize("version", ["1.6", "2.0.1", "2.1", "ocpp1.6", "ocpp2.0.1", "ocpp2.1"])
def test_an_unknown_or_vendor_action_gets_not_implemented(version: str) -> None:
    """An action the version does not know is answered NotImplemented, naming the version."""
    result = answer(version, "AcmeFlashLeds", {"pattern": "blink"})
    assert result.kind is AnswerKind.ERROR
    assert result.error_code == "NotImplemented"
    assert "OCPP " + version.removeprefix("ocpp") in result.error_description


def test_an_action_of_another_version_gets_not_implemented() -> None:
    """TransactionEvent on 1.6 does not exist there: NotImplemented, with what to use instead."""
    result = answer("1.6", "TransactionEvent", REQUESTS_201["TransactionEvent"])
    assert result.error_code == "NotImplemented"
    assert result.error_description == (
        "TransactionEvent does not exist in OCPP 1.6; use StartTransaction or StopTransaction"
    )


@pytest.mark.parametrize("version", list(REQUESTS))
def test_a_csms_action_sent_by_a_charger_gets_not_supported(version: Version) -> None:
    """A known action a charger never sends (e.g. Reset) is answered NotSupported."""
    csms_only = sorted(csms_to_charger_actions(version) - charger_to_csms_actions(version))
    for action in csms_only:
        result = answer(version, action, {})
        assert (result.kind, result.error_code) == (AnswerKind.ERROR, "NotSupported")


def test_answers_become_frames_with_the_call_id() -> None:
    """A result becomes a CALLRESULT and an error a CALLERROR, both with the CALL's id."""
    result_frame = answer("1.6", "Heartbeat", {}).frame("19223201")
    assert result_frame == '[3,"19223201",{"currentTime":"2025-06-01T12:00:00Z"}]'
    error_frame = answer("1.6", "AcmeFlashLeds", {}).frame("7")
    assert error_frame is not None
    parsed = parse_frame(error_frame)
    assert parsed.message_type is MessageType.CALLERROR
    assert (parsed.message_id, parsed.error_code) == ("7", "NotImplemented")


def test_fixed_answers_are_fresh_copies() -> None:
    """Changing one answer's payload does not change the next one."""
    first = answer("2.0.1", "MeterValues", REQUESTS_201["MeterValues"])
    assert first.payload is not None
    first.payload["x"] = 1
    assert answer("2.0.1", "MeterValues", REQUESTS_201["MeterValues"]).payload == {}
