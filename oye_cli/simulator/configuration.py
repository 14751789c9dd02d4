"""The configuration keys of the simulated 1.6 charger and how ChangeConfiguration checks them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ConfigKey:
    """One 1.6 configuration key; ``kind`` is how ChangeConfiguration validates values."""

    value: str
    readonly: bool = False
    kind: str = "string"  # "int", "bool" or "string"
    write_only: bool = False  # reported without value (AuthorizationKey)


def default_configuration(connectors: int) -> dict[str, ConfigKey]:
    """The keys a typical 1.6 charger with smart charging reports."""
    return {
        "HeartbeatInterval": ConfigKey("300", kind="int"),
        "MeterValueSampleInterval": ConfigKey("60", kind="int"),
        "MeterValuesSampledData": ConfigKey("Energy.Active.Import.Register"),
        "ClockAlignedDataInterval": ConfigKey("0", kind="int"),
        "WebSocketPingInterval": ConfigKey("30", kind="int"),
        "ConnectionTimeOut": ConfigKey("60", kind="int"),
        "ResetRetries": ConfigKey("3", kind="int"),
        "AuthorizeRemoteTxRequests": ConfigKey("false", kind="bool"),
        "LocalAuthorizeOffline": ConfigKey("true", kind="bool"),
        "LocalPreAuthorize": ConfigKey("false", kind="bool"),
        "StopTransactionOnInvalidId": ConfigKey("true", kind="bool"),
        "NumberOfConnectors": ConfigKey(str(connectors), readonly=True, kind="int"),
        # What the handlers implement (no FirmwareManagement: no firmware to update).
        "SupportedFeatureProfiles": ConfigKey(
            "Core,LocalAuthListManagement,Reservation,SmartCharging,RemoteTrigger",
            readonly=True,
        ),
        "GetConfigurationMaxKeys": ConfigKey("50", readonly=True, kind="int"),
        "ChargeProfileMaxStackLevel": ConfigKey("8", readonly=True, kind="int"),
        "ChargingScheduleAllowedChargingRateUnit": ConfigKey("Current,Power", readonly=True),
        "ChargingScheduleMaxPeriods": ConfigKey("24", readonly=True, kind="int"),
        "MaxChargingProfilesInstalled": ConfigKey("16", readonly=True, kind="int"),
        "ConnectorSwitch3to1PhaseSupported": ConfigKey("false", readonly=True, kind="bool"),
        "AuthorizationKey": ConfigKey("", kind="string", write_only=True),
        # Vendor key (not OCPP): many chargers ignore profiles unless "scheduled mode" is on.
        "ScheduledMode": ConfigKey("0"),
    }


def valid_value(key: ConfigKey, value: str) -> bool:
    """Whether ChangeConfiguration may set ``value``: non-negative integers, booleans, text."""
    if key.kind == "int":
        return value.lstrip("-").isdigit() and int(value) >= 0
    if key.kind == "bool":
        return value in ("true", "false")
    return len(value) <= 500
