"""OCPP 1.6 local authorization list and reservations of the simulated charger.

The LocalAuthListManagement and Reservation feature profiles its
``SupportedFeatureProfiles`` names; the rules are in :mod:`.local_auth`. A reserved
connector reports ``Reserved``, a cancelled reservation ``Available`` again.
(FirmwareManagement is not claimed: GetDiagnostics and UpdateFirmware get NotSupported.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ocpp.v16 import call_result

from oye_cli.simulator.ocpp_peer import Ocpp16Peer, after, on
from oye_cli.simulator.state import ChargerState, FollowUp


class ManagementV16(Ocpp16Peer):
    """The handlers; :class:`~.v16.ChargerV16` adds the rest (and ``status``)."""

    state: ChargerState
    _follow_up: FollowUp

    if TYPE_CHECKING:

        async def status(self, connector: int, status: str) -> Any: ...

    @on("GetLocalListVersion")
    def on_get_local_list_version(self, **_: Any) -> Any:
        return call_result.GetLocalListVersion(self.state.local.version)

    @on("SendLocalList")
    def on_send_local_list(
        self,
        list_version: int,
        update_type: str,
        local_authorization_list: list[dict[str, Any]] | None = None,
        **_: Any,
    ) -> Any:
        entries = [
            (entry["id_tag"], (entry.get("id_tag_info") or {}).get("status"))
            for entry in local_authorization_list or []
        ]
        return call_result.SendLocalList(
            self.state.local.update(list_version, update_type, entries)
        )

    @on("ReserveNow")
    def on_reserve_now(self, connector_id: int, reservation_id: int, **_: Any) -> Any:
        connector = self.state.connector(connector_id) if connector_id else None
        return call_result.ReserveNow(self.state.local.reserve(reservation_id, connector))

    @after("ReserveNow")
    def after_reserve_now(self, connector_id: int, reservation_id: int, **_: Any) -> None:
        connector = self.state.connector(connector_id)
        reserved = self.state.local.reservations.get(reservation_id) == connector_id
        if connector is not None and reserved and connector.status != "Reserved":
            self._follow_up(self.status(connector_id, "Reserved"))

    @on("CancelReservation")
    def on_cancel_reservation(self, reservation_id: int, **_: Any) -> Any:
        known = reservation_id in self.state.local.reservations
        return call_result.CancelReservation("Accepted" if known else "Rejected")

    @after("CancelReservation")
    def after_cancel_reservation(self, reservation_id: int, **_: Any) -> None:
        freed = self.state.local.cancel(reservation_id)
        connector = self.state.connector(freed) if freed is not None else None
        if connector is not None and connector.transaction is None:
            self._follow_up(self.status(connector.id, "Available"))
