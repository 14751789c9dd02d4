"""The offline responder: what the proxy answers a charger's CALL while the CSMS is unreachable.

One entry per charger-initiated action and OCPP version (OCPP_NOTES.md §4), each the minimal
answer with required fields only, so that every answer validates against that version's
official response schema (the unit tests check all of them). Pure functions: the caller gives
the clock, the heartbeat interval, the 1.6 transaction id and the authorization policy, and
turns the :class:`OfflineAnswer` into a frame; storing and replaying transaction data is the
relay's business, not this module's.

Rules encoded here:

* never answer a SEND (2.1 NotifyPeriodicEventStream) -> :attr:`AnswerKind.NONE`;
* an action the version does not know -> CALLERROR ``NotImplemented``; a known action that a
  charger does not send (it belongs to the CSMS) -> ``NotSupported``;
* requests are *not* validated (a charger with slightly off firmware must keep working while the
  CSMS is away) except where the answer echoes request data, which must then be valid; a bad
  one gets the version's own spelling of the format error (1.6 ``FormationViolation``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

from oye_shared.frames import call_error_frame, call_result_frame
from oye_shared.schemas import (
    UnknownActionError,
    Version,
    call_error_code,
    charger_to_csms_actions,
    check_action,
    ocpp_version,
    send_actions,
    validate_request,
)

MAX_TRANSACTION_ID = 2**31 - 1  # 1.6 transactionId is a (positive) int32 on most CSMSs


class AnswerKind(StrEnum):
    RESULT = "result"  # send a CALLRESULT with ``payload``
    ERROR = "error"  # send a CALLERROR with ``error_code`` and ``error_description``
    NONE = "none"  # send nothing (SEND messages are never answered)


@dataclass(frozen=True, slots=True)
class OfflineAnswer:
    """Either a CALLRESULT payload, a CALLERROR, or deliberately nothing."""

    kind: AnswerKind
    payload: dict[str, Any] | None = None
    error_code: str | None = None
    error_description: str = ""

    @classmethod
    def result(cls, payload: dict[str, Any]) -> OfflineAnswer:
        return cls(AnswerKind.RESULT, payload=payload)

    @classmethod
    def error(cls, code: str, description: str) -> OfflineAnswer:
        return cls(AnswerKind.ERROR, error_code=code, error_description=description[:255])

    @classmethod
    def silence(cls) -> OfflineAnswer:
        return cls(AnswerKind.NONE)

    def frame(self, message_id: str) -> str | None:
        """The wire text answering the CALL ``message_id``; None when nothing is to be sent."""
        if self.kind is AnswerKind.RESULT:
            return call_result_frame(message_id, self.payload or {})
        if self.kind is AnswerKind.ERROR:
            return call_error_frame(message_id, self.error_code or "", self.error_description)
        return None


def accept_all(id_token: str) -> bool:
    """The default policy of the notes: free charging while the CSMS is away."""
    return True


@dataclass(frozen=True, slots=True)
class _Call:
    """Everything an answer may depend on."""

    version: Version
    action: str
    payload: Mapping[str, Any]
    now: datetime
    heartbeat_interval: int
    transaction_id: int | None
    authorize: Callable[[str], bool]

    @property
    def current_time(self) -> str:
        # Whole seconds and "Z": the form every charger firmware parses (sub-second is noise).
        return self.now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def status_of(self, token: object) -> str:
        """Accepted or Invalid for an id tag / id token string; anything else is Invalid."""
        return "Accepted" if isinstance(token, str) and self.authorize(token) else "Invalid"


def offline_answer(
    version: str,
    action: str,
    payload: Mapping[str, Any],
    *,
    now: datetime,
    heartbeat_interval: int,
    transaction_id: int | None = None,
    authorize: Callable[[str], bool] = accept_all,
) -> OfflineAnswer:
    """Answer a charger's CALL in the CSMS's place.

    ``version`` is "1.6", "2.0.1", "2.1" or a subprotocol token; ``now`` must be timezone-aware;
    ``heartbeat_interval`` is the last interval the CSMS gave (BootNotification); a 1.6
    StartTransaction needs ``transaction_id`` (unique, from the relay's reserved range, which
    it also persists); ``authorize`` decides Accepted/Invalid for an id tag or token.
    Raises ValueError for a naive ``now``, a missing/out-of-range 1.6 transaction id, or an
    unsupported version (:class:`~oye_shared.schemas.UnsupportedVersionError`).
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    v = ocpp_version(version)
    try:
        check_action(v, action)
    except UnknownActionError as exc:
        return OfflineAnswer.error("NotImplemented", str(exc))
    if action in send_actions(v):
        return OfflineAnswer.silence()
    if action not in charger_to_csms_actions(v):
        return OfflineAnswer.error(
            "NotSupported", f"{action} is sent by a CSMS; a charging station cannot send it"
        )
    call = _Call(v, action, payload, now, heartbeat_interval, transaction_id, authorize)
    return _ANSWERS[v][action](call)


def answered_actions(version: str) -> frozenset[str]:
    """The actions with an entry in the table (every charger-initiated action but SENDs)."""
    return frozenset(_ANSWERS[ocpp_version(version)])


# --- The answers ------------------------------------------------------------------------------

_Answerer = Callable[[_Call], OfflineAnswer]


def _fixed(payload: Mapping[str, Any]) -> _Answerer:
    """An answer that never changes (a fresh copy each time: callers may add to it)."""

    def answer(call: _Call) -> OfflineAnswer:
        return OfflineAnswer.result(_copy(payload))

    return answer


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def _boot_notification(call: _Call) -> OfflineAnswer:
    # Accepted: a Pending/Rejected charger would stop working; the relay replays the boot later.
    return OfflineAnswer.result(
        {
            "currentTime": call.current_time,
            "interval": call.heartbeat_interval,
            "status": "Accepted",
        }
    )


def _heartbeat(call: _Call) -> OfflineAnswer:
    return OfflineAnswer.result({"currentTime": call.current_time})


def _authorize_16(call: _Call) -> OfflineAnswer:
    return OfflineAnswer.result(
        {"idTagInfo": {"status": call.status_of(call.payload.get("idTag"))}}
    )


def _start_transaction_16(call: _Call) -> OfflineAnswer:
    # 1.6 transaction ids are CSMS-assigned; the relay hands out a fake one and rewrites it on
    # replay. The id is given even when the tag is Invalid, as a CSMS does.
    tx = call.transaction_id
    if tx is None or isinstance(tx, bool) or not 0 < tx <= MAX_TRANSACTION_ID:
        raise ValueError(
            f"a 1.6 StartTransaction needs a transaction id in 1..{MAX_TRANSACTION_ID}"
        )
    status = call.status_of(call.payload.get("idTag"))
    return OfflineAnswer.result({"idTagInfo": {"status": status}, "transactionId": tx})


def _id_token_of(payload: Mapping[str, Any]) -> object:
    id_token = payload.get("idToken")
    return id_token.get("idToken") if isinstance(id_token, Mapping) else None


def _authorize_2x(call: _Call) -> OfflineAnswer:
    status = call.status_of(_id_token_of(call.payload))
    return OfflineAnswer.result({"idTokenInfo": {"status": status}})


def _transaction_event(call: _Call) -> OfflineAnswer:
    # E01.FR.12: when the request carries an idToken, the answer carries idTokenInfo.
    if "idToken" not in call.payload:
        return OfflineAnswer.result({})
    status = call.status_of(_id_token_of(call.payload))
    return OfflineAnswer.result({"idTokenInfo": {"status": status}})


def _echo_guard(call: _Call) -> OfflineAnswer | None:
    """Answers that echo request data need a valid request; otherwise a format CALLERROR."""
    problems = validate_request(call.version, call.action, call.payload)
    if not problems:
        return None
    described = "; ".join(f"{p.path}: {p.message}" for p in problems)
    return OfflineAnswer.error(call_error_code(call.version, "FormatViolation"), described)


def _vat_number_validation(call: _Call) -> OfflineAnswer:
    # Nobody can check a VAT number offline; echo it (and the EVSE) with Rejected.
    refused = _echo_guard(call)
    if refused is not None:
        return refused
    answer: dict[str, Any] = {"vatNumber": call.payload["vatNumber"], "status": "Rejected"}
    if "evseId" in call.payload:
        answer["evseId"] = call.payload["evseId"]
    return OfflineAnswer.result(answer)


def _certificate_chain_status(call: _Call) -> OfflineAnswer:
    # No OCSP/CRL responder is reachable: every requested certificate gets Failed, retry now.
    refused = _echo_guard(call)
    if refused is not None:
        return refused
    statuses = [
        {
            "certificateHashData": _copy(request["certificateHashData"]),
            "source": request["source"],
            "status": "Failed",
            "nextUpdate": call.current_time,
        }
        for request in call.payload["certificateStatusRequests"]
    ]
    return OfflineAnswer.result({"certificateStatus": statuses})


_EMPTY = _fixed({})
_UNKNOWN_VENDOR = _fixed({"status": "UnknownVendorId"})  # the spec answer to an unknown vendorId
_REJECTED = _fixed({"status": "Rejected"})

_V16: Final[Mapping[str, _Answerer]] = MappingProxyType(
    {
        "Authorize": _authorize_16,
        "BootNotification": _boot_notification,
        "DataTransfer": _UNKNOWN_VENDOR,
        "DiagnosticsStatusNotification": _EMPTY,
        "FirmwareStatusNotification": _EMPTY,
        "Heartbeat": _heartbeat,
        "LogStatusNotification": _EMPTY,
        "MeterValues": _EMPTY,
        "SecurityEventNotification": _EMPTY,
        "SignCertificate": _REJECTED,  # no CA offline
        "SignedFirmwareStatusNotification": _EMPTY,
        "StartTransaction": _start_transaction_16,
        "StatusNotification": _EMPTY,
        "StopTransaction": _EMPTY,  # idTagInfo is optional; the relay stores and forwards
    }
)
_V201: Final[Mapping[str, _Answerer]] = MappingProxyType(
    {
        "Authorize": _authorize_2x,
        "BootNotification": _boot_notification,
        "ClearedChargingLimit": _EMPTY,
        "DataTransfer": _UNKNOWN_VENDOR,
        "FirmwareStatusNotification": _EMPTY,
        "Get15118EVCertificate": _fixed({"status": "Failed", "exiResponse": ""}),  # no V2G PKI
        "GetCertificateStatus": _fixed({"status": "Failed"}),
        "Heartbeat": _heartbeat,
        "LogStatusNotification": _EMPTY,
        "MeterValues": _EMPTY,
        "NotifyChargingLimit": _EMPTY,
        "NotifyCustomerInformation": _EMPTY,
        "NotifyDisplayMessages": _EMPTY,
        "NotifyEVChargingNeeds": _REJECTED,  # K15.FR.02: "the CSMS gives no schedule"
        "NotifyEVChargingSchedule": _fixed({"status": "Accepted"}),
        "NotifyEvent": _EMPTY,
        "NotifyMonitoringReport": _EMPTY,
        "NotifyReport": _EMPTY,
        "PublishFirmwareStatusNotification": _EMPTY,
        "ReportChargingProfiles": _EMPTY,
        "ReservationStatusUpdate": _EMPTY,
        "SecurityEventNotification": _EMPTY,
        "SignCertificate": _REJECTED,
        "StatusNotification": _EMPTY,
        "TransactionEvent": _transaction_event,
    }
)
_V21: Final[Mapping[str, _Answerer]] = MappingProxyType(
    {
        **_V201,  # 2.1 keeps every 2.0.1 action; these answers validate against 2.1 as well
        "BatterySwap": _EMPTY,
        "ClosePeriodicEventStream": _EMPTY,
        "GetCertificateChainStatus": _certificate_chain_status,
        "NotifyDERAlarm": _EMPTY,
        "NotifyDERStartStop": _EMPTY,
        "NotifyPriorityCharging": _EMPTY,
        "NotifySettlement": _EMPTY,  # payment data: the relay stores and forwards it
        "OpenPeriodicEventStream": _REJECTED,  # nobody would consume the stream
        "PullDynamicScheduleUpdate": _REJECTED,
        "ReportDERControl": _EMPTY,
        "VatNumberValidation": _vat_number_validation,
    }
)
_ANSWERS: Final[Mapping[Version, Mapping[str, _Answerer]]] = MappingProxyType(
    {"1.6": _V16, "2.0.1": _V201, "2.1": _V21}
)
