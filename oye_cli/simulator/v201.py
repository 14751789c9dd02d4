"""The OCPP 2.0.1 side of the simulated charger: what it sends and how it answers the CSMS.

Each EVSE has one connector (id 1). Transaction ids are chosen here (UUID hex). Follow-ups
(TransactionEvent after RequestStartTransaction, ReportChargingProfiles after
GetChargingProfiles, NotifyReport after GetBaseReport, ...) run after the reply was sent,
as tasks the charger owns.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from ocpp.v201 import call, call_result

from oye_cli.simulator.device_model import DeviceModel, default_variables
from oye_cli.simulator.ocpp_peer import Connection, after, on, utc_iso
from oye_cli.simulator.state import VENDOR_ID, ChargerState, Connector, FollowUp, Transaction
from oye_cli.simulator.v201_management import ManagementV201
from oye_cli.simulator.v201_smart_charging import SmartChargingV201

_TRIGGER_REASON = {
    "Started": "Authorized",
    "Updated": "MeterValuePeriodic",
    "Ended": "StopAuthorized",
}


class ChargerV201(ManagementV201, SmartChargingV201):
    """A 2.0.1 station: call methods for what it sends, ``@on`` handlers for what it answers."""

    def __init__(
        self,
        charge_point_id: str,
        connection: Connection,
        *,
        state: ChargerState,
        follow_up: FollowUp,
        response_timeout: float = 10.0,
        vendor: str = VENDOR_ID,
        model: str = "Simulator",
        device_model: DeviceModel | None = None,
        reboot: Callable[[], None] | None = None,
    ) -> None:
        """``device_model``: the variables to use (kept across connections), the default
        set if none; ``reboot``: called when an accepted Reset should restart the station."""
        super().__init__(charge_point_id, connection, response_timeout=response_timeout)
        self.state = state
        self.device_model = device_model or DeviceModel(default_variables(charge_point_id))
        self._follow_up = follow_up
        self._reboot = reboot
        self._vendor = vendor
        self._model = model

    # -- what the station sends --------------------------------------------------------

    async def boot(self, reason: str = "PowerUp", **station: Any) -> Any:
        """BootNotification; an Accepted interval becomes OCPPCommCtrlr.HeartbeatInterval."""
        station.setdefault("vendor_name", self._vendor)
        station.setdefault("model", self._model)
        result = await self._call(call.BootNotification(charging_station=station, reason=reason))
        if result.status == "Accepted":
            self.device_model.get("OCPPCommCtrlr", "HeartbeatInterval").value = str(result.interval)
        return result

    async def heartbeat(self) -> Any:
        return await self._call(call.Heartbeat())

    async def status(self, connector: int, status: str) -> Any:
        """StatusNotification for EVSE ``connector`` (connector 1): Available, Occupied, ..."""
        if found := self.state.connector(connector):
            found.status = status
        now = utc_iso(self.state.now())
        return await self._call(call.StatusNotification(now, status, connector, 1))

    async def meter_values(
        self, connector: int = 1, *, energy_wh: int | None = None, power_w: float | None = None
    ) -> Any:
        """MeterValues with the energy register (and power) of EVSE ``connector``."""
        return await self._call(
            call.MeterValues(connector, self._meter_value(connector, energy_wh, power_w))
        )

    def _meter_value(
        self, connector: int, energy_wh: int | None = None, power_w: float | None = None
    ) -> list[dict[str, Any]]:
        found = self.state.connector(connector)
        if found and energy_wh is not None:
            found.meter_wh = energy_wh
        energy = energy_wh if energy_wh is not None else (found.meter_wh if found else 0)
        sampled: list[dict[str, Any]] = [
            {"value": energy, "measurand": "Energy.Active.Import.Register"}
        ]
        if power_w is not None:
            sampled.append({"value": power_w, "measurand": "Power.Active.Import"})
        return [{"timestamp": utc_iso(self.state.now()), "sampled_value": sampled}]

    async def authorize(self, id_tag: str, token_type: str = "ISO14443") -> Any:
        return await self._call(call.Authorize({"id_token": id_tag, "type": token_type}))

    async def data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: Any = None
    ) -> Any:
        return await self._call(call.DataTransfer(vendor_id, message_id, data))

    async def transaction_event(
        self,
        event_type: str,
        *,
        evse: int = 1,
        trigger_reason: str | None = None,
        id_tag: str | None = None,
        charging_state: str | None = None,
        stopped_reason: str | None = None,
        remote_start_id: int | None = None,
        energy_wh: int | None = None,
        transaction_id: str | None = None,
        power_w: float | None = None,
    ) -> Any:
        """TransactionEvent Started/Updated/Ended on ``evse``; ``seqNo`` counts per transaction.

        Started opens a transaction (id: ``transaction_id`` or a new UUID hex); Ended closes
        it and drops its TxProfiles. ``id_tag`` is sent as an ISO14443 ``idToken``.
        """
        connector = self._connector(evse)
        now = self.state.now()
        transaction = connector.transaction
        if event_type == "Started" or transaction is None:
            tx_id = transaction_id or uuid.uuid4().hex
            transaction = Transaction(tx_id, evse, id_tag or "", now, connector.meter_wh)
            transaction.remote_start_id = remote_start_id
            if event_type != "Ended":
                connector.transaction = transaction
        else:
            transaction.seq_no += 1
        info: dict[str, Any] = {"transaction_id": transaction.id}
        if charging_state:
            info["charging_state"] = charging_state
        if stopped_reason or event_type == "Ended":
            info["stopped_reason"] = stopped_reason or "Local"
        if remote_start_id is not None:
            info["remote_start_id"] = remote_start_id
        payload = call.TransactionEvent(
            event_type=event_type,
            timestamp=utc_iso(now),
            trigger_reason=trigger_reason or _TRIGGER_REASON[event_type],
            seq_no=transaction.seq_no,
            transaction_info=info,
            meter_value=self._meter_value(evse, energy_wh, power_w),
            evse={"id": evse, "connector_id": 1},
            id_token={"id_token": id_tag, "type": "ISO14443"} if id_tag else None,
        )
        if event_type == "Ended" and connector.transaction is transaction:
            self.state.end_transaction(transaction)
        return await self._call(payload)

    def _connector(self, connector: int) -> Connector:
        found = self.state.connector(connector)
        if found is None:
            raise LookupError(f"no EVSE {connector}")
        return found

    # -- device model ------------------------------------------------------------------

    @on("GetVariables")
    def on_get_variables(self, get_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        self._refresh_entries()
        return call_result.GetVariables([self.device_model.read(i) for i in get_variable_data])

    @on("SetVariables")
    def on_set_variables(self, set_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        return call_result.SetVariables([self.device_model.write(i) for i in set_variable_data])

    def _refresh_entries(self) -> None:
        entries = self.device_model.get("SmartChargingCtrlr", "Entries", "ChargingProfiles")
        entries.value = str(len(self.state.profiles.profiles))

    @on("GetBaseReport")
    def on_get_base_report(self, request_id: int, report_base: str, **_: Any) -> Any:
        return call_result.GetBaseReport("Accepted")

    @after("GetBaseReport")
    def after_get_base_report(self, request_id: int, report_base: str, **_: Any) -> None:
        self._refresh_entries()
        self._follow_up(self._notify_report(request_id, self.device_model.report(report_base)))

    async def _notify_report(self, request_id: int, items: list[dict[str, Any]]) -> None:
        """NotifyReport in parts of DeviceDataCtrlr.ItemsPerMessage[GetReport] items."""
        size = int(self.device_model.get("DeviceDataCtrlr", "ItemsPerMessage", "GetReport").value)
        parts = [items[i : i + size] for i in range(0, len(items), size)] or [[]]
        generated_at = utc_iso(self.state.now())
        for seq_no, part in enumerate(parts):
            tbc = seq_no < len(parts) - 1
            await self._call(
                call.NotifyReport(request_id, generated_at, seq_no, part or None, tbc=tbc)
            )

    @on("Reset")
    def on_reset(self, type: str, evse_id: int | None = None, **_: Any) -> Any:
        """OnIdle with a running transaction -> Scheduled; otherwise Accepted."""
        self.state.resets.append(type)
        busy = any(c.transaction for c in self.state.affected(evse_id))
        return call_result.Reset("Scheduled" if busy and type == "OnIdle" else "Accepted")

    @after("Reset")
    def after_reset(self, type: str, evse_id: int | None = None, **_: Any) -> None:
        """Immediate: running transactions end (ImmediateReset). A station-wide reset that
        was not Scheduled then reboots the station if it was given a ``reboot`` (else the
        socket stays up)."""
        idle = not self.state.transactions()
        if type == "Immediate":
            for connector in self.state.affected(evse_id):
                if connector.transaction:
                    self._follow_up(
                        self.transaction_event(
                            "Ended",
                            evse=connector.id,
                            trigger_reason="ResetCommand",
                            stopped_reason="ImmediateReset",
                        )
                    )
        if self._reboot is not None and evse_id is None and (type == "Immediate" or idle):
            self._reboot()

    # -- remote control ------------------------------------------------------------------

    @on("RequestStartTransaction")
    def on_request_start_transaction(
        self, id_token: dict[str, Any], remote_start_id: int, evse_id: int | None = None, **_: Any
    ) -> Any:
        """Rejected on a busy (naming its transaction) or inoperative EVSE."""
        connector = self.state.connector(evse_id or 1)
        if connector is None or not connector.operative:
            return call_result.RequestStartTransaction("Rejected")
        if connector.transaction is not None:
            return call_result.RequestStartTransaction(
                "Rejected", transaction_id=connector.transaction.id
            )
        return call_result.RequestStartTransaction("Accepted")

    @after("RequestStartTransaction")
    def after_request_start_transaction(
        self,
        id_token: dict[str, Any],
        remote_start_id: int,
        evse_id: int | None = None,
        charging_profile: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        connector = self.state.connector(evse_id or 1)
        if connector is not None and connector.operative and connector.transaction is None:
            self._follow_up(
                self._remote_start(connector.id, id_token, remote_start_id, charging_profile)
            )

    async def _remote_start(
        self,
        evse: int,
        id_token: dict[str, Any],
        remote_start_id: int,
        charging_profile: dict[str, Any] | None,
    ) -> None:
        """Authorize if AuthCtrlr.AuthorizeRemoteStart, Occupied, TransactionEvent Started."""
        if self.device_model.get("AuthCtrlr", "AuthorizeRemoteStart").value == "true":
            answer = await self.authorize(id_token["id_token"], id_token["type"])
            if answer.id_token_info["status"] != "Accepted":
                return
        await self.status(evse, "Occupied")
        await self.transaction_event(
            "Started",
            evse=evse,
            trigger_reason="RemoteStart",
            id_tag=id_token["id_token"],
            charging_state="Charging",
            remote_start_id=remote_start_id,
        )
        transaction = self._connector(evse).transaction
        if charging_profile is not None and transaction is not None:
            self.install_profile(evse, charging_profile | {"transaction_id": transaction.id})

    @on("RequestStopTransaction")
    def on_request_stop_transaction(self, transaction_id: str, **_: Any) -> Any:
        known = self.state.transaction(transaction_id) is not None
        return call_result.RequestStopTransaction("Accepted" if known else "Rejected")

    @after("RequestStopTransaction")
    def after_request_stop_transaction(self, transaction_id: str, **_: Any) -> None:
        if transaction := self.state.transaction(transaction_id):
            self._follow_up(
                self.transaction_event(
                    "Ended",
                    evse=transaction.connector,
                    trigger_reason="RemoteStop",
                    stopped_reason="Remote",
                    charging_state="EVConnected",
                )
            )

    @on("TriggerMessage")
    def on_trigger_message(
        self, requested_message: str, evse: dict[str, Any] | None = None, **_: Any
    ) -> Any:
        evse_id = (evse or {}).get("id")
        if evse_id and self.state.connector(evse_id) is None:
            return call_result.TriggerMessage("Rejected")
        self.state.triggers.append(requested_message)
        known = requested_message in _TRIGGERABLE
        return call_result.TriggerMessage("Accepted" if known else "NotImplemented")

    @after("TriggerMessage")
    def after_trigger_message(
        self, requested_message: str, evse: dict[str, Any] | None = None, **_: Any
    ) -> None:
        if requested_message in _TRIGGERABLE:
            self._follow_up(self._triggered(requested_message, (evse or {}).get("id")))

    async def _triggered(self, message: str, evse_id: int | None) -> None:
        if message == "BootNotification":
            await self.boot(reason="Triggered")
        elif message == "Heartbeat":
            await self.heartbeat()
        elif message == "FirmwareStatusNotification":
            await self._call(call.FirmwareStatusNotification("Idle"))
        elif message == "LogStatusNotification":
            await self._call(call.LogStatusNotification("Idle"))
        else:
            for connector in self.state.affected(evse_id):
                if message == "StatusNotification":
                    await self.status(connector.id, connector.status)
                elif message == "MeterValues":
                    await self.meter_values(connector.id)
                elif connector.transaction:  # TransactionEvent
                    await self.transaction_event(
                        "Updated", evse=connector.id, trigger_reason="Trigger"
                    )

    @on("ChangeAvailability")
    def on_change_availability(
        self, operational_status: str, evse: dict[str, Any] | None = None, **_: Any
    ) -> Any:
        """Scheduled when a transaction runs on a target EVSE, else Accepted."""
        operative = operational_status == "Operative"
        status = self.state.change_availability((evse or {}).get("id"), operative)
        return call_result.ChangeAvailability(status)

    @after("ChangeAvailability")
    def after_change_availability(
        self, operational_status: str, evse: dict[str, Any] | None = None, **_: Any
    ) -> None:
        for connector, status in self.state.availability_changes((evse or {}).get("id")):
            self._follow_up(self.status(connector, status))

    @on("UnlockConnector")
    def on_unlock_connector(self, evse_id: int, connector_id: int, **_: Any) -> Any:
        """UnknownConnector, OngoingAuthorizedTransaction (F05.FR.02) or Unlocked."""
        connector = self.state.connector(evse_id)
        if connector is None or connector_id != 1:
            return call_result.UnlockConnector("UnknownConnector")
        if connector.transaction is not None:
            return call_result.UnlockConnector("OngoingAuthorizedTransaction")
        self.state.unlocks.append(evse_id)
        return call_result.UnlockConnector("Unlocked")

    @on("DataTransfer")
    def on_data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: Any = None, **_: Any
    ) -> Any:
        """Our own vendor id echoes the data; any other is UnknownVendorId (the spec answer)."""
        status = self.state.data_transfer(vendor_id, message_id, data)
        return call_result.DataTransfer(status, data=data if status == "Accepted" else None)

    @on("ClearCache")
    def on_clear_cache(self, **_: Any) -> Any:
        return call_result.ClearCache("Accepted")


_TRIGGERABLE = frozenset(
    {
        "BootNotification",
        "FirmwareStatusNotification",
        "Heartbeat",
        "LogStatusNotification",
        "MeterValues",
        "StatusNotification",
        "TransactionEvent",
    }
)
