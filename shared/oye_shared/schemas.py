"""Validation of OCPP payloads against the official OCA schemas, and the action catalog.

The proxy validates only what it originates itself (injected CALLs, offline answers); relayed
frames are never validated or re-serialized. The schemas are the ones shipped in the ``ocpp``
package (2.1.0): ``ocpp/v16/schemas``, ``ocpp/v201/schemas`` and ``ocpp/v21/schemas``.

Three details make this more than a call to ``jsonschema``:

* **Exact numbers.** 1.6 limits are ``multipleOf 0.1``; with floats ``21.4 / 0.1`` is not whole,
  so 21.4 would be refused. Payload text is parsed with ``parse_float=Decimal`` (dicts with floats
  are converted through ``Decimal(repr(f))``), schemas are loaded the same way, and ``multipleOf``
  is checked with exact fractions.
* **Formats.** Without the optional ``rfc3339-validator`` package jsonschema silently accepts any
  ``date-time``; this module brings its own RFC 3339 check (and a plain absolute-URI check), so
  the result does not depend on which optional packages happen to be installed.
* **Drafts.** 1.6 core schemas are draft-04, the 1.6 security whitepaper and all 2.x schemas are
  draft-06; the validator class follows each schema's ``$schema``.

Errors (all are ``ValueError``)::

    ValueError
     +-- UnsupportedVersionError   not 1.6, 2.0.1 or 2.1 (nor their subprotocol tokens)
     +-- UnknownActionError        the action does not exist in that version; may suggest one
     +-- NoResponseError           a SEND action (2.1) has no response to validate
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import date
from decimal import Decimal
from fractions import Fraction
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any, Final, Literal, Protocol, cast, get_args

# jsonschema ships no type hints (and the project's mypy config does not silence it).
from jsonschema import (
    FormatChecker,
    ValidationError,
    validators,
)

from oye_shared.inject import Problem

Version = Literal["1.6", "2.0.1", "2.1"]
VERSIONS: Final[tuple[Version, ...]] = get_args(Version)

#: WebSocket subprotocol token -> OCPP version.
SUBPROTOCOLS: Final[Mapping[str, Version]] = MappingProxyType(
    {"ocpp1.6": "1.6", "ocpp2.0.1": "2.0.1", "ocpp2.1": "2.1"}
)

_SCHEMA_DIRS: Final[Mapping[Version, str]] = MappingProxyType(
    {"1.6": "v16", "2.0.1": "v201", "2.1": "v21"}
)


class UnsupportedVersionError(ValueError):
    """The version is none of 1.6, 2.0.1, 2.1 (or ocpp1.6, ocpp2.0.1, ocpp2.1)."""


class UnknownActionError(ValueError):
    """The action does not exist in this OCPP version.

    ``suggestion`` names the action to use instead in that version where there is one (e.g.
    GetCompositeSchedule for GetChargingProfiles on 1.6); ``alternatives`` lists every candidate
    when there are several (TransactionEvent on 1.6: StartTransaction, StopTransaction).
    """

    def __init__(self, version: Version, action: str, alternatives: tuple[str, ...] = ()) -> None:
        self.version = version
        self.action = action
        self.alternatives = alternatives
        self.suggestion = alternatives[0] if alternatives else None
        super().__init__(_unknown_action_message(version, action, alternatives))


class NoResponseError(ValueError):
    """The action is a SEND (OCPP 2.1 message type 6): it is never answered."""


def ocpp_version(version: str) -> Version:
    """Normalize ``"1.6"`` or the subprotocol token ``"ocpp1.6"`` (etc.) to a :data:`Version`."""
    if version in VERSIONS:
        return version
    if version in SUBPROTOCOLS:
        return SUBPROTOCOLS[version]
    raise UnsupportedVersionError(
        f"unsupported OCPP version {version[:40]!r}; expected one of "
        + ", ".join([*VERSIONS, *SUBPROTOCOLS])
    )


def _names(text: str) -> frozenset[str]:
    """Whitespace-separated names: the tables below stay as readable as the notes' tables."""
    return frozenset(text.split())


# --- The action catalog ---------------------------------------------------------------------
# The schema files do not say who sends what; the direction comes from the specification texts
# (OCPP_NOTES.md §3). DataTransfer is the one action both sides send. The unit tests check that
# each version's catalog is exactly the set of its schema files.

_V16_FROM_CHARGER = _names(
    """Authorize BootNotification DataTransfer DiagnosticsStatusNotification
    FirmwareStatusNotification Heartbeat LogStatusNotification MeterValues
    SecurityEventNotification SignCertificate SignedFirmwareStatusNotification StartTransaction
    StatusNotification StopTransaction"""
)
_V16_FROM_CSMS = _names(
    """CancelReservation CertificateSigned ChangeAvailability ChangeConfiguration ClearCache
    ClearChargingProfile DataTransfer DeleteCertificate ExtendedTriggerMessage
    GetCompositeSchedule GetConfiguration GetDiagnostics GetInstalledCertificateIds
    GetLocalListVersion GetLog InstallCertificate RemoteStartTransaction RemoteStopTransaction
    ReserveNow Reset SendLocalList SetChargingProfile SignedUpdateFirmware TriggerMessage
    UnlockConnector UpdateFirmware"""
)
_V201_FROM_CHARGER = _names(
    """Authorize BootNotification ClearedChargingLimit DataTransfer FirmwareStatusNotification
    Get15118EVCertificate GetCertificateStatus Heartbeat LogStatusNotification MeterValues
    NotifyChargingLimit NotifyCustomerInformation NotifyDisplayMessages NotifyEVChargingNeeds
    NotifyEVChargingSchedule NotifyEvent NotifyMonitoringReport NotifyReport
    PublishFirmwareStatusNotification ReportChargingProfiles ReservationStatusUpdate
    SecurityEventNotification SignCertificate StatusNotification TransactionEvent"""
)
_V201_FROM_CSMS = _names(
    """CancelReservation CertificateSigned ChangeAvailability ClearCache ClearChargingProfile
    ClearDisplayMessage ClearVariableMonitoring CostUpdated CustomerInformation DataTransfer
    DeleteCertificate GetBaseReport GetChargingProfiles GetCompositeSchedule GetDisplayMessages
    GetInstalledCertificateIds GetLocalListVersion GetLog GetMonitoringReport GetReport
    GetTransactionStatus GetVariables InstallCertificate PublishFirmware RequestStartTransaction
    RequestStopTransaction ReserveNow Reset SendLocalList SetChargingProfile SetDisplayMessage
    SetMonitoringBase SetMonitoringLevel SetNetworkProfile SetVariableMonitoring SetVariables
    TriggerMessage UnlockConnector UnpublishFirmware UpdateFirmware"""
)
_V21_FROM_CHARGER = _V201_FROM_CHARGER | _names(
    """BatterySwap ClosePeriodicEventStream GetCertificateChainStatus NotifyDERAlarm
    NotifyDERStartStop NotifyPeriodicEventStream NotifyPriorityCharging NotifySettlement
    OpenPeriodicEventStream PullDynamicScheduleUpdate ReportDERControl
    VatNumberValidation"""
)
_V21_FROM_CSMS = _V201_FROM_CSMS | _names(
    """AFRRSignal AdjustPeriodicEventStream ChangeTransactionTariff ClearDERControl ClearTariffs
    GetDERControl GetPeriodicEventStream GetTariffs NotifyAllowedEnergyTransfer
    NotifyWebPaymentStarted RequestBatterySwap SetDERControl SetDefaultTariff
    UpdateDynamicSchedule UsePriorityCharging"""
)
_FROM_CHARGER: Final[Mapping[Version, frozenset[str]]] = MappingProxyType(
    {"1.6": _V16_FROM_CHARGER, "2.0.1": _V201_FROM_CHARGER, "2.1": _V21_FROM_CHARGER}
)
_FROM_CSMS: Final[Mapping[Version, frozenset[str]]] = MappingProxyType(
    {"1.6": _V16_FROM_CSMS, "2.0.1": _V201_FROM_CSMS, "2.1": _V21_FROM_CSMS}
)
#: Actions sent as SEND (type 6): no response, no response schema.
_SEND: Final[Mapping[Version, frozenset[str]]] = MappingProxyType(
    {"1.6": frozenset(), "2.0.1": frozenset(), "2.1": frozenset({"NotifyPeriodicEventStream"})}
)


def charger_to_csms_actions(version: str) -> frozenset[str]:
    """Actions a charger initiates (the ones the offline responder must answer)."""
    return _FROM_CHARGER[ocpp_version(version)]


def csms_to_charger_actions(version: str) -> frozenset[str]:
    """Actions a CSMS initiates (the ones the proxy may inject)."""
    return _FROM_CSMS[ocpp_version(version)]


def all_actions(version: str) -> frozenset[str]:
    """Every action of the version, both directions (1.6: 39, 2.0.1: 64, 2.1: 91)."""
    v = ocpp_version(version)
    return _FROM_CHARGER[v] | _FROM_CSMS[v]


def send_actions(version: str) -> frozenset[str]:
    """Actions that travel as SEND and are never answered (2.1: NotifyPeriodicEventStream)."""
    return _SEND[ocpp_version(version)]


#: Request (CSMS -> charger) -> the report the charger sends afterwards as its own CALL,
#: correlated by ``requestId`` (2.0.1 and 2.1; none exist in 1.6). Every report listed has a
#: required ``requestId`` and a ``tbc`` flag (more to come); only NotifyReport,
#: NotifyMonitoringReport and NotifyCustomerInformation also carry ``seqNo``.
#: Not listed, though correlated by ``requestId``: GetLog / UpdateFirmware / PublishFirmware,
#: whose status notifications carry an *optional* requestId and no ``tbc`` (progress, not data),
#: and 2.1 RequestBatterySwap -> BatterySwap (one event, required requestId, no ``tbc``).
FOLLOW_UP_REPORTS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "GetChargingProfiles": "ReportChargingProfiles",
        "GetBaseReport": "NotifyReport",
        "GetReport": "NotifyReport",
        "GetMonitoringReport": "NotifyMonitoringReport",
        "CustomerInformation": "NotifyCustomerInformation",
        "GetDisplayMessages": "NotifyDisplayMessages",
        "GetDERControl": "ReportDERControl",
    }
)


def follow_up_report(version: str, action: str) -> str | None:
    """The report that follows ``action`` in ``version``, or None (always None on 1.6)."""
    report = FOLLOW_UP_REPORTS.get(action)
    actions = all_actions(version)
    return report if report is not None and action in actions and report in actions else None


# --- Unknown actions and what to use instead ------------------------------------------------
# Keyed by the *target* version family: the action that was asked for -> its counterpart(s).
_INSTEAD_ON_16: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "GetChargingProfiles": ("GetCompositeSchedule",),
        "ReportChargingProfiles": ("GetCompositeSchedule",),
        "RequestStartTransaction": ("RemoteStartTransaction",),
        "RequestStopTransaction": ("RemoteStopTransaction",),
        "GetVariables": ("GetConfiguration",),
        "SetVariables": ("ChangeConfiguration",),
        "GetBaseReport": ("GetConfiguration",),
        "GetReport": ("GetConfiguration",),
        "TransactionEvent": ("StartTransaction", "StopTransaction"),
    }
)
_INSTEAD_ON_2X: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "RemoteStartTransaction": ("RequestStartTransaction",),
        "RemoteStopTransaction": ("RequestStopTransaction",),
        "GetConfiguration": ("GetVariables", "GetBaseReport"),
        "ChangeConfiguration": ("SetVariables",),
        "StartTransaction": ("TransactionEvent",),
        "StopTransaction": ("TransactionEvent",),
        "ExtendedTriggerMessage": ("TriggerMessage",),
        "GetDiagnostics": ("GetLog",),
        "DiagnosticsStatusNotification": ("LogStatusNotification",),
        "SignedUpdateFirmware": ("UpdateFirmware",),
        "SignedFirmwareStatusNotification": ("FirmwareStatusNotification",),
    }
)


def _instead(version: Version, action: str) -> tuple[str, ...]:
    """What to use instead of ``action`` in ``version``: equivalent, spelling or suffix fix."""
    table = _INSTEAD_ON_16 if version == "1.6" else _INSTEAD_ON_2X
    if action in table:
        return table[action]
    known = all_actions(version)
    for suffix in ("Request", "Response"):
        if action.endswith(suffix) and action.removesuffix(suffix) in known:
            return (action.removesuffix(suffix),)
    same_letters = [name for name in sorted(known) if name.lower() == action.lower()]
    return tuple(same_letters)


def _unknown_action_message(version: Version, action: str, alternatives: tuple[str, ...]) -> str:
    shown = action if len(action) <= 60 else action[:57] + "..."
    message = f"{shown} does not exist in OCPP {version}"
    if alternatives:
        return message + "; use " + " or ".join(alternatives)
    elsewhere = [v for v in VERSIONS if action in all_actions(v)]
    if elsewhere:
        return message + " (only in OCPP " + " and ".join(elsewhere) + ")"
    return message


def check_action(version: str, action: str) -> Version:
    """The normalized version; :class:`UnknownActionError` if the action is not in it."""
    v = ocpp_version(version)
    if action not in all_actions(v):
        raise UnknownActionError(v, action, _instead(v, action))
    return v


# --- CALLERROR codes -------------------------------------------------------------------------

_CODES_ALL = _names(
    """NotImplemented NotSupported InternalError ProtocolError SecurityError
    PropertyConstraintViolation TypeConstraintViolation GenericError"""
)
#: Error codes per version, in their exact wire spelling (1.6 keeps two historic spellings).
CALL_ERROR_CODES: Final[Mapping[Version, frozenset[str]]] = MappingProxyType(
    {
        "1.6": _CODES_ALL | {"FormationViolation", "OccurenceConstraintViolation"},
        "2.0.1": _CODES_ALL
        | {
            "FormatViolation",
            "OccurrenceConstraintViolation",
            "MessageTypeNotSupported",
            "RpcFrameworkError",
        },
        "2.1": _CODES_ALL
        | {
            "FormatViolation",
            "OccurrenceConstraintViolation",
            "MessageTypeNotSupported",
            "RpcFrameworkError",
        },
    }
)
_SPELLINGS: Final[Mapping[str, tuple[str, str]]] = MappingProxyType(
    {  # either spelling -> (1.6 spelling, 2.x spelling)
        "FormatViolation": ("FormationViolation", "FormatViolation"),
        "FormationViolation": ("FormationViolation", "FormatViolation"),
        "OccurrenceConstraintViolation": (
            "OccurenceConstraintViolation",
            "OccurrenceConstraintViolation",
        ),
        "OccurenceConstraintViolation": (
            "OccurenceConstraintViolation",
            "OccurrenceConstraintViolation",
        ),
    }
)


def call_error_code(version: str, code: str) -> str:
    """The version's own wire spelling of an error code (FormationViolation on 1.6, ...).

    Raises ValueError for a code the version does not have (e.g. RpcFrameworkError on 1.6).
    """
    v = ocpp_version(version)
    if code in _SPELLINGS:
        code = _SPELLINGS[code][0 if v == "1.6" else 1]
    if code not in CALL_ERROR_CODES[v]:
        raise ValueError(f"{code} is not a CALLERROR code of OCPP {v}")
    return code


# --- Schema loading and the validator -------------------------------------------------------

_DATE_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:[Zz]|[+-](\d{2}):(\d{2}))"
)
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s]*")
_FORMATS = FormatChecker(formats=())


def _is_date_time(instance: object) -> bool:
    """RFC 3339 ``date-time``: real calendar date, 24-hour time, ``Z`` or a numeric offset."""
    if not isinstance(instance, str):
        return True
    match = _DATE_TIME.fullmatch(instance)
    if match is None:
        return False
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    offset_hour, offset_minute = (int(part or 0) for part in match.groups()[6:])
    try:
        date(year, month, day)
    except ValueError:
        return False
    # Second 60 is RFC 3339's leap second.
    return hour < 24 and minute < 60 and second <= 60 and offset_hour < 24 and offset_minute < 60


def _is_uri(instance: object) -> bool:
    """An absolute URI (scheme, colon, no whitespace): enough to catch a missing scheme."""
    return not isinstance(instance, str) or _URI.fullmatch(instance) is not None


_FORMATS.checks("date-time")(_is_date_time)
_FORMATS.checks("uri")(_is_uri)


class _SchemaValidator(Protocol):
    """The part of a jsonschema validator this module uses."""

    def is_type(self, instance: Any, type_name: str) -> bool: ...

    def iter_errors(self, instance: Any) -> Iterator[Any]: ...


_MAX_EXPONENT = 1000  # beyond this an exact multipleOf check could take unbounded memory


def _multiple_of(
    validator: _SchemaValidator, divisor: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    """``multipleOf`` with exact arithmetic on ints and Decimals (floats are converted first)."""
    if not validator.is_type(instance, "number"):
        return
    value = Decimal(repr(instance)) if isinstance(instance, float) else instance
    if isinstance(value, Decimal) and (
        not value.is_finite() or abs(cast(int, value.as_tuple().exponent)) > _MAX_EXPONENT
    ):
        yield ValidationError(f"{value} is out of range")
        return
    if Fraction(value) % Fraction(divisor) != 0:
        yield ValidationError(f"{value} is not a multiple of {divisor}")


def _is_integer_draft4(checker: Any, instance: object) -> bool:
    # Draft 4 (and jsonschema's Draft4Validator): 16.0 is not an integer.
    return isinstance(instance, int) and not isinstance(instance, bool)


def _is_integer_draft6(checker: Any, instance: object) -> bool:
    # Draft 6: any number with a zero fractional part is an integer (16.0 too).
    if isinstance(instance, Decimal):
        return instance.is_finite() and instance == instance.to_integral_value()
    if isinstance(instance, float):
        return instance.is_integer()
    return _is_integer_draft4(checker, instance)


@cache
def _validator_class(meta_schema: str) -> Any:
    """The draft's validator class with exact multipleOf and Decimal-aware integers."""
    base = validators.validator_for({"$schema": meta_schema})
    is_integer = _is_integer_draft4 if "draft-04" in meta_schema else _is_integer_draft6
    return validators.extend(  # type: ignore[no-untyped-call]
        base,
        validators={"multipleOf": _multiple_of},
        type_checker=base.TYPE_CHECKER.redefine("integer", is_integer),
    )


def _schema_file(version: Version, action: str, response: bool) -> str:
    if action in _SEND[version]:
        return f"{action}.json"
    if version == "1.6":
        return f"{action}Response.json" if response else f"{action}.json"
    return f"{action}Response.json" if response else f"{action}Request.json"


@cache
def _validator(version: Version, action: str, response: bool) -> _SchemaValidator:
    """Load (numbers as Decimal) and compile one schema; cached, as it is used per call."""
    path = resources.files("ocpp") / _SCHEMA_DIRS[version] / "schemas"
    text = (path / _schema_file(version, action, response)).read_text(encoding="utf-8")
    schema = json.loads(text, parse_float=Decimal)
    cls = _validator_class(schema.get("$schema", "http://json-schema.org/draft-04/schema#"))
    validator: _SchemaValidator = cls(schema, format_checker=_FORMATS)
    return validator


def response_schema(version: str, action: str) -> dict[str, Any]:
    """The official response schema of ``action`` (plain JSON, numbers as Decimal)."""
    v = _checked(version, action, response=True)
    path = resources.files("ocpp") / _SCHEMA_DIRS[v] / "schemas"
    text = (path / _schema_file(v, action, True)).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text, parse_float=Decimal)
    return schema


# --- Public validation ------------------------------------------------------------------------


class _NotAJsonNumber:
    """Stands in for NaN/Infinity, which Python's json and float allow but JSON does not."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def validate_request(version: str, action: str, payload: Mapping[str, Any]) -> list[Problem]:
    """Every problem of a CALL payload, sorted by path; [] when valid.

    Raises :class:`UnknownActionError` if the action does not exist in that version.
    """
    return _validate(version, action, _exact(payload), response=False)


def validate_response(version: str, action: str, payload: Mapping[str, Any]) -> list[Problem]:
    """Every problem of a CALLRESULT payload answering ``action``, sorted by path."""
    return _validate(version, action, _exact(payload), response=True)


def validate_request_text(version: str, action: str, payload_text: str | bytes) -> list[Problem]:
    """Like :func:`validate_request`, on the JSON text exactly as sent (numbers stay exact)."""
    return _validate_text(version, action, payload_text, response=False)


def validate_response_text(version: str, action: str, payload_text: str | bytes) -> list[Problem]:
    """Like :func:`validate_response`, on the JSON text exactly as sent."""
    return _validate_text(version, action, payload_text, response=True)


def _validate_text(
    version: str, action: str, payload_text: str | bytes, *, response: bool
) -> list[Problem]:
    _checked(version, action, response)  # an unknown action is an error even in bad text
    try:
        instance = json.loads(payload_text, parse_float=Decimal, parse_constant=_NotAJsonNumber)
    except (ValueError, RecursionError) as exc:
        return [Problem(path="$", message=f"not valid JSON: {exc}")]
    return _validate(version, action, instance, response=response)


def _validate(version: str, action: str, instance: Any, *, response: bool) -> list[Problem]:
    v = _checked(version, action, response)
    found: list[tuple[tuple[tuple[int, int, str], ...], str, str]] = []
    bad_paths: set[tuple[str | int, ...]] = set()
    for parts, value in _non_json(instance):
        bad_paths.add(parts)
        found.append((_sort_key(parts), _json_path(parts), f"{value!r} is not a JSON number"))
    for error in _validator(v, action, response).iter_errors(instance):
        parts = tuple(error.absolute_path)
        if parts not in bad_paths:  # already reported, once, as not a number
            found.append((_sort_key(parts), _json_path(parts), _readable(error.message)))
    return [Problem(path=path, message=message) for _, path, message in sorted(found)]


def _checked(version: str, action: str, response: bool) -> Version:
    """The normalized version, once the action is known to have the wanted schema."""
    v = check_action(version, action)
    if response and action in _SEND[v]:
        raise NoResponseError(f"{action} is a SEND in OCPP {v}: it has no response")
    return v


def _exact(payload: Any) -> Any:
    """A copy with every float as the Decimal of its shortest repr (16.05 -> Decimal('16.05'))."""
    if isinstance(payload, float):
        if math.isfinite(payload):
            return Decimal(repr(payload))
        return _NotAJsonNumber(
            "NaN" if math.isnan(payload) else f"{'-' if payload < 0 else ''}Infinity"
        )
    if isinstance(payload, Mapping):
        return {key: _exact(value) for key, value in payload.items()}
    if isinstance(payload, list | tuple):
        return [_exact(item) for item in payload]
    return payload


def _non_json(
    instance: Any, path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], _NotAJsonNumber]]:
    """Where NaN and Infinity stand: not JSON, and a crash for Decimal comparisons."""
    if isinstance(instance, _NotAJsonNumber):
        yield path, instance
    elif isinstance(instance, dict):
        for key, value in instance.items():
            yield from _non_json(value, (*path, key))
    elif isinstance(instance, list):
        for index, item in enumerate(instance):
            yield from _non_json(item, (*path, index))


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DECIMAL_REPR = re.compile(r"Decimal\('([^']*)'\)")


def _json_path(parts: Iterable[str | int]) -> str:
    """``$.a.b[0].c``; keys that are not identifiers as ``$["a key"]``."""
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENTIFIER.fullmatch(part):
            out += f".{part}"
        else:
            out += f"[{json.dumps(part)}]"
    return out


def _sort_key(parts: Iterable[str | int]) -> tuple[tuple[int, int, str], ...]:
    """Order paths element by element, indexes numerically (``[2]`` before ``[10]``)."""
    return tuple((0, part, "") if isinstance(part, int) else (1, 0, part) for part in parts)


def _readable(message: str) -> str:
    """jsonschema's message without Decimal reprs, and bounded (it may quote a whole object)."""
    message = _DECIMAL_REPR.sub(r"\1", message)
    return message if len(message) <= 300 else message[:297] + "..."
