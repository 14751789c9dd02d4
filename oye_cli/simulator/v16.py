"""The OCPP 1.6 side of the simulated charger: what it sends and how it answers the CSMS.

Answers follow OCPP 1.6 edition 2; choices the spec leaves open are noted where made.
Follow-ups (StartTransaction after RemoteStartTransaction, the triggered message after
TriggerMessage, ...) run after the reply was sent, as tasks the charger owns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ocpp.v16 import call, call_result

from oye_cli.simulator.configuration import ConfigKey, default_configuration, valid_value
from oye_cli.simulator.ocpp_peer import Connection, after, on, utc_iso
from oye_cli.simulator.smart_charging import TX
from oye_cli.simulator.state import VENDOR_ID, ChargerState, Connector, FollowUp, Transaction
from oye_cli.simulator.v16_management import ManagementV16
from oye_cli.simulator.v16_smart_charging import SmartChargingV16

_STOP_REASON = {"Hard": "HardReset", "Soft": "SoftReset"}


class ChargerV16(ManagementV16, SmartChargingV16):
    """A 1.6 charger: call methods for what it sends, ``@on`` handlers for what it answers."""

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
        config: dict[str, ConfigKey] | None = None,
        reboot: Callable[[], None] | None = None,
    ) -> None:
        """``config``: the keys to use (kept across connections), a fresh default set if
        none; ``reboot``: called when an accepted Reset should restart the charger."""
        super().__init__(charge_point_id, connection, response_timeout=response_timeout)
        self.state = state
        self.config = config if config is not None else default_configuration(len(state.connectors))
        self._follow_up = follow_up
        self._reboot = reboot
        self._vendor = vendor
        self._model = model

    # -- what the charger sends ------------------------------------------------------

    async def boot(self, **fields: Any) -> Any:
        """BootNotification; an Accepted interval becomes HeartbeatInterval."""
        fields.setdefault("charge_point_vendor", self._vendor)
        fields.setdefault("charge_point_model", self._model)
        result = await self._call(call.BootNotification(**fields))
        if result.status == "Accepted":
            self.config["HeartbeatInterval"].value = str(result.interval)
        return result

    async def heartbeat(self) -> Any:
        return await self._call(call.Heartbeat())

    async def status(self, connector: int, status: str, *, error_code: str = "NoError") -> Any:
        """StatusNotification; also remembered as the connector's status."""
        if found := self.state.connector(connector):
            found.status = status
        timestamp = utc_iso(self.state.now())
        return await self._call(
            call.StatusNotification(connector, error_code, status, timestamp=timestamp)
        )

    async def meter_values(
        self, connector: int = 1, *, energy_wh: int | None = None, power_w: float | None = None
    ) -> Any:
        """MeterValues with the energy register (and power), tied to a running transaction."""
        found = self.state.connector(connector)
        if found and energy_wh is not None:
            found.meter_wh = energy_wh
        energy = energy_wh if energy_wh is not None else (found.meter_wh if found else 0)
        sampled = [_sample(str(energy), "Energy.Active.Import.Register", "Wh")]
        if power_w is not None:
            sampled.append(_sample(str(power_w), "Power.Active.Import", "W"))
        transaction = found.transaction if found else None
        return await self._call(
            call.MeterValues(
                connector_id=connector,
                meter_value=[{"timestamp": utc_iso(self.state.now()), "sampled_value": sampled}],
                transaction_id=int(transaction.id) if transaction else None,
            )
        )

    async def authorize(self, id_tag: str) -> Any:
        return await self._call(call.Authorize(id_tag))

    async def data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: str | None = None
    ) -> Any:
        return await self._call(call.DataTransfer(vendor_id, message_id, data))

    async def start_transaction(
        self, connector: int = 1, id_tag: str = "OYE-TAG", *, meter_start: int | None = None
    ) -> Any:
        """StartTransaction; the CSMS's ``transactionId`` becomes the connector's transaction.

        The transaction is kept whatever ``idTagInfo`` says (a real charger would then stop
        it); the caller sees the status in the result.
        """
        found = self._connector(connector)
        meter = found.meter_wh if meter_start is None else meter_start
        now = self.state.now()
        result = await self._call(call.StartTransaction(connector, id_tag, meter, utc_iso(now)))
        found.meter_wh = meter
        found.transaction = Transaction(str(result.transaction_id), connector, id_tag, now, meter)
        return result

    async def stop_transaction(
        self,
        transaction_id: int | None = None,
        *,
        meter_stop: int | None = None,
        reason: str | None = None,
        connector: int | None = None,
    ) -> Any:
        """StopTransaction of ``transaction_id`` (or the one on ``connector``, or any)."""
        transaction = self._find_transaction(transaction_id, connector)
        if transaction is None and transaction_id is None:
            raise LookupError("no running transaction to stop")
        found = self.state.connector(transaction.connector) if transaction else None
        meter = meter_stop if meter_stop is not None else (found.meter_wh if found else 0)
        tx_id = int(transaction.id) if transaction else transaction_id
        payload = call.StopTransaction(
            meter_stop=meter,
            timestamp=utc_iso(self.state.now()),
            transaction_id=tx_id,
            reason=reason,
            id_tag=transaction.id_tag if transaction else None,
        )
        if transaction and found:
            found.meter_wh = meter
            self.state.end_transaction(transaction)
        return await self._call(payload)

    def _connector(self, connector: int) -> Connector:
        found = self.state.connector(connector)
        if found is None:
            raise LookupError(f"no connector {connector}")
        return found

    def _find_transaction(
        self, transaction_id: int | None, connector: int | None
    ) -> Transaction | None:
        if transaction_id is not None:
            return self.state.transaction(str(transaction_id))
        if connector is not None:
            return self._connector(connector).transaction
        return next(iter(self.state.transactions()), None)

    # -- configuration -----------------------------------------------------------------

    @on("GetConfiguration")
    def on_get_configuration(self, key: list[str] | None = None, **_: Any) -> Any:
        """Known keys with value and readonly flag; the others under ``unknownKey``."""
        names = key or list(self.config)
        known = [
            {"key": name, "readonly": entry.readonly}
            | ({} if entry.write_only else {"value": entry.value})
            for name in names
            if (entry := self.config.get(name)) is not None
        ]
        unknown = [name for name in names if name not in self.config]
        return call_result.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    @on("ChangeConfiguration")
    def on_change_configuration(self, key: str, value: str, **_: Any) -> Any:
        """Unknown key -> NotSupported; read-only or invalid value -> Rejected; else stored."""
        entry = self.config.get(key)
        if entry is None:
            return call_result.ChangeConfiguration("NotSupported")
        if entry.readonly or not valid_value(entry, value):
            return call_result.ChangeConfiguration("Rejected")
        entry.value = value
        return call_result.ChangeConfiguration("Accepted")

    @on("Reset")
    def on_reset(self, type: str, **_: Any) -> Any:
        self.state.resets.append(type)
        return call_result.Reset("Accepted")

    @after("Reset")
    def after_reset(self, type: str, **_: Any) -> None:
        """Running transactions end (reason HardReset/SoftReset), then the charger reboots
        if it was given a ``reboot`` (else the socket stays up)."""
        for transaction in self.state.transactions():
            self._follow_up(self.stop_transaction(int(transaction.id), reason=_STOP_REASON[type]))
        if self._reboot is not None:
            self._reboot()

    # -- remote control ------------------------------------------------------------------

    @on("RemoteStartTransaction")
    def on_remote_start_transaction(
        self,
        id_tag: str,
        connector_id: int | None = None,
        charging_profile: dict[str, Any] | None = None,
        **_: Any,
    ) -> Any:
        """Rejected on a busy or inoperative connector, or with a profile that is no TxProfile."""
        ready = self._startable(connector_id, charging_profile)
        return call_result.RemoteStartTransaction("Accepted" if ready else "Rejected")

    @after("RemoteStartTransaction")
    def after_remote_start_transaction(
        self,
        id_tag: str,
        connector_id: int | None = None,
        charging_profile: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        if connector := self._startable(connector_id, charging_profile):
            self._follow_up(self._remote_start(connector.id, id_tag, charging_profile))

    def _startable(
        self, connector_id: int | None, charging_profile: dict[str, Any] | None
    ) -> Connector | None:
        connector = self.state.connector(connector_id or 1)
        if connector is None or connector.transaction is not None or not connector.operative:
            return None
        if charging_profile is not None and charging_profile.get("charging_profile_purpose") != TX:
            return None
        return connector

    async def _remote_start(
        self, connector: int, id_tag: str, charging_profile: dict[str, Any] | None
    ) -> None:
        """Authorize if AuthorizeRemoteTxRequests, Preparing, StartTransaction, Charging."""
        if self.config["AuthorizeRemoteTxRequests"].value == "true":
            answer = await self.authorize(id_tag)
            if answer.id_tag_info["status"] != "Accepted":
                return
        await self.status(connector, "Preparing")
        await self.start_transaction(connector, id_tag)
        if charging_profile is not None:
            self.install_profile(connector, charging_profile)
        await self.status(connector, "Charging")

    @on("RemoteStopTransaction")
    def on_remote_stop_transaction(self, transaction_id: int, **_: Any) -> Any:
        known = self.state.transaction(str(transaction_id)) is not None
        return call_result.RemoteStopTransaction("Accepted" if known else "Rejected")

    @after("RemoteStopTransaction")
    def after_remote_stop_transaction(self, transaction_id: int, **_: Any) -> None:
        transaction = self.state.transaction(str(transaction_id))
        if transaction is not None:
            self._follow_up(self._stop_and_finish(transaction, "Remote"))

    async def _stop_and_finish(self, transaction: Transaction, reason: str) -> None:
        await self.stop_transaction(int(transaction.id), reason=reason)
        await self.status(transaction.connector, self._idle_status(transaction.connector))

    def _idle_status(self, connector: int) -> str:
        found = self._connector(connector)
        return "Finishing" if found.operative else "Unavailable"

    @on("TriggerMessage")
    def on_trigger_message(
        self, requested_message: str, connector_id: int | None = None, **_: Any
    ) -> Any:
        if connector_id and self.state.connector(connector_id) is None:
            return call_result.TriggerMessage("Rejected")
        self.state.triggers.append(requested_message)
        known = requested_message in _TRIGGERABLE
        return call_result.TriggerMessage("Accepted" if known else "NotImplemented")

    @after("TriggerMessage")
    def after_trigger_message(
        self, requested_message: str, connector_id: int | None = None, **_: Any
    ) -> None:
        if requested_message in _TRIGGERABLE:
            self._follow_up(self._triggered(requested_message, connector_id))

    async def _triggered(self, message: str, connector_id: int | None) -> None:
        if message == "BootNotification":
            await self.boot()
        elif message == "Heartbeat":
            await self.heartbeat()
        elif message == "DiagnosticsStatusNotification":
            await self._call(call.DiagnosticsStatusNotification("Idle"))
        elif message == "FirmwareStatusNotification":
            await self._call(call.FirmwareStatusNotification("Idle"))
        else:
            for connector in self.state.affected(connector_id):
                if message == "StatusNotification":
                    await self.status(connector.id, connector.status)
                else:
                    await self.meter_values(connector.id)

    @on("UnlockConnector")
    def on_unlock_connector(self, connector_id: int, **_: Any) -> Any:
        if self.state.connector(connector_id) is None:
            return call_result.UnlockConnector("NotSupported")
        self.state.unlocks.append(connector_id)
        return call_result.UnlockConnector("Unlocked")

    @after("UnlockConnector")
    def after_unlock_connector(self, connector_id: int, **_: Any) -> None:
        """Unlocking ends a transaction on the connector (reason UnlockCommand)."""
        connector = self.state.connector(connector_id)
        if connector is not None and connector.transaction is not None:
            self._follow_up(self._stop_and_finish(connector.transaction, "UnlockCommand"))

    @on("ChangeAvailability")
    def on_change_availability(self, connector_id: int, type: str, **_: Any) -> Any:
        """Scheduled when a transaction runs on a target connector, else Accepted."""
        status = self.state.change_availability(connector_id, type == "Operative")
        return call_result.ChangeAvailability(status)

    @after("ChangeAvailability")
    def after_change_availability(self, connector_id: int, type: str, **_: Any) -> None:
        for connector, status in self.state.availability_changes(connector_id):
            self._follow_up(self.status(connector, status))

    @on("DataTransfer")
    def on_data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: str | None = None, **_: Any
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
        "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
        "Heartbeat",
        "MeterValues",
        "StatusNotification",
    }
)


def _sample(value: str, measurand: str, unit: str) -> dict[str, str]:
    return {"value": value, "context": "Sample.Periodic", "measurand": measurand, "unit": unit}
