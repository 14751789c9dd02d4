"""What the owner wants to know about a charger, learned from its frames (pure).

Boot information, connector states and open transactions are read from the traffic as it
passes; nothing here blocks forwarding. 1.6 transaction ids are assigned by whoever
answers StartTransaction, so the StartTransaction CALL waits here for its answer.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from oye_shared.frames import Frame, MessageType
from oye_shared.state import ChargerState

_BOOT_FIELDS_16 = {
    "chargePointVendor": "vendor",
    "chargePointModel": "model",
    "chargePointSerialNumber": "serial",
    "chargeBoxSerialNumber": "chargeBoxSerial",
    "firmwareVersion": "firmware",
    "iccid": "iccid",
    "imsi": "imsi",
    "meterType": "meterType",
    "meterSerialNumber": "meterSerial",
}
_BOOT_FIELDS_2X = {
    "vendorName": "vendor",
    "model": "model",
    "serialNumber": "serial",
    "firmwareVersion": "firmware",
}


class ChargerTracker:
    """Keeps one charger's :class:`ChargerState` current from the frames it sees."""

    def __init__(self, state: ChargerState) -> None:
        self.state = state
        self._starts: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def from_charger(self, frame: Frame) -> bool:
        """Observe a frame the charger sent; True when the state changed."""
        if frame.message_type is not MessageType.CALL or not isinstance(frame.payload, dict):
            return False
        payload = frame.payload
        match frame.action:
            case "BootNotification":
                self.state.boot = _boot_info(payload)
                return True
            case "StatusNotification":
                return self._status(payload)
            case "StartTransaction":
                self._starts[frame.message_id] = payload
                if len(self._starts) > 16:
                    self._starts.popitem(last=False)
                return False
            case "StopTransaction":
                return (
                    self.state.transactions.pop(str(payload.get("transactionId")), None) is not None
                )
            case "TransactionEvent":
                return self._transaction_event(payload)
        return False

    def to_charger(self, frame: Frame) -> bool:
        """Observe an answer the charger received (from the CSMS or the proxy)."""
        if frame.message_type is not MessageType.CALLRESULT:
            return False
        start = self._starts.pop(frame.message_id, None)
        if start is None or not isinstance(frame.payload, dict):
            return False
        transaction_id = frame.payload.get("transactionId")
        if transaction_id is None:
            return False
        self.state.transactions[str(transaction_id)] = {
            "connectorId": start.get("connectorId"),
            "idTag": start.get("idTag"),
            "meterStart": start.get("meterStart"),
            "startedAt": start.get("timestamp"),
        }
        return True

    def _status(self, payload: dict[str, Any]) -> bool:
        if "connectorStatus" in payload:  # 2.0.1 and 2.1
            key = f"{payload.get('evseId')}/{payload.get('connectorId')}"
            entry = {"status": payload.get("connectorStatus")}
        else:
            key = str(payload.get("connectorId"))
            entry = {"status": payload.get("status"), "errorCode": payload.get("errorCode")}
            if info := payload.get("info"):
                entry["info"] = info
        entry["timestamp"] = payload.get("timestamp")
        self.state.connectors[key] = entry
        return True

    def _transaction_event(self, payload: dict[str, Any]) -> bool:
        info = payload.get("transactionInfo") or {}
        transaction_id = info.get("transactionId")
        if not isinstance(transaction_id, str):
            return False
        if payload.get("eventType") == "Ended":
            return self.state.transactions.pop(transaction_id, None) is not None
        known = self.state.transactions.get(transaction_id)
        entry = dict(known) if known else {"startedAt": payload.get("timestamp")}
        if evse := payload.get("evse"):
            entry["evseId"] = evse.get("id")
            entry["connectorId"] = evse.get("connectorId")
        if token := payload.get("idToken"):
            entry["idToken"] = token.get("idToken")
        if state := info.get("chargingState"):
            entry["chargingState"] = state
        self.state.transactions[transaction_id] = entry
        return entry != known


def _boot_info(payload: dict[str, Any]) -> dict[str, Any]:
    station = payload.get("chargingStation")
    if isinstance(station, dict):  # 2.0.1 and 2.1
        info = {name: station[key] for key, name in _BOOT_FIELDS_2X.items() if key in station}
        if reason := payload.get("reason"):
            info["reason"] = reason
        return info
    return {name: payload[key] for key, name in _BOOT_FIELDS_16.items() if key in payload}
