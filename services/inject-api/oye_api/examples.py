"""The Smart Charging Guide's requests, offered as examples in the OpenAPI docs (/docs)."""

from __future__ import annotations

from typing import Any

from fastapi.openapi.models import Example


def _profile(
    profile_id: int,
    purpose: str,
    kind: str,
    periods: list[dict[str, Any]],
    *,
    stack_level: int = 0,
    transaction_id: int | None = None,
) -> dict[str, Any]:
    profile: dict[str, Any] = {"chargingProfileId": profile_id}
    if transaction_id is not None:
        profile["transactionId"] = transaction_id
    profile |= {
        "stackLevel": stack_level,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": periods},
    }
    return profile


INJECT_EXAMPLES: dict[str, Example] = {
    "scenario-a-grid-limit": Example(
        summary="A: limit the whole charger to 32 A (1.6, ChargePointMaxProfile)",
        value={
            "action": "SetChargingProfile",
            "payload": {
                "connectorId": 0,
                "csChargingProfiles": _profile(
                    1, "ChargePointMaxProfile", "Absolute", [{"startPeriod": 0, "limit": 32.0}]
                ),
            },
        },
    ),
    "scenario-b-time-of-use": Example(
        summary="B: 6 A for the first 8 hours of every session, then 32 A (TxDefaultProfile)",
        value={
            "action": "SetChargingProfile",
            "payload": {
                "connectorId": 1,
                "csChargingProfiles": _profile(
                    2,
                    "TxDefaultProfile",
                    "Relative",
                    [{"startPeriod": 0, "limit": 6.0}, {"startPeriod": 28800, "limit": 32.0}],
                ),
            },
        },
    ),
    "scenario-c-throttle-session": Example(
        summary="C: throttle transaction 12345 to 10 A now (TxProfile)",
        value={
            "action": "SetChargingProfile",
            "payload": {
                "connectorId": 1,
                "csChargingProfiles": _profile(
                    3,
                    "TxProfile",
                    "Absolute",
                    [{"startPeriod": 0, "limit": 10.0}],
                    stack_level=1,
                    transaction_id=12345,
                ),
            },
        },
    ),
    "clear-profile": Example(
        summary="Clear charging profile 1",
        value={"action": "ClearChargingProfile", "payload": {"id": 1}},
    ),
    "get-composite-schedule": Example(
        summary="The active limit for the next hour (GetCompositeSchedule)",
        value={
            "action": "GetCompositeSchedule",
            "payload": {"connectorId": 0, "duration": 3600, "chargingRateUnit": "A"},
        },
    ),
    "get-configuration": Example(
        summary="Read a configuration key (1.6 GetConfiguration)",
        value={"action": "GetConfiguration", "payload": {"key": ["ScheduledMode"]}},
    ),
    "change-configuration": Example(
        summary="Enable scheduled mode (1.6 ChangeConfiguration)",
        value={"action": "ChangeConfiguration", "payload": {"key": "ScheduledMode", "value": "1"}},
    ),
    "get-charging-profiles-2.0.1-collect": Example(
        summary="List installed profiles with their reports (2.0.1/2.1 GetChargingProfiles)",
        description=(
            "`collect` waits for the charger's ReportChargingProfiles messages and returns "
            '`{"result": <GetChargingProfiles result>, "reports": [<payloads>]}`. '
            "OCPP 1.6 has no GetChargingProfiles: use GetCompositeSchedule there."
        ),
        value={
            "action": "GetChargingProfiles",
            "payload": {"requestId": 1, "chargingProfile": {"chargingProfilePurpose": "TxProfile"}},
            "collect": True,
        },
    ),
    "vendor-action-unvalidated": Example(
        summary="Send without schema validation, and do not wait for the answer",
        value={
            "action": "DataTransfer",
            "payload": {"vendorId": "com.example", "messageId": "Ping"},
            "validate": False,
            "wait": False,
        },
    ),
}
