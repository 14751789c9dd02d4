"""OCPP 2.0.1 local list, reservations and transaction status of the simulated station.

SendLocalList / GetLocalListVersion and ReserveNow / CancelReservation follow the rules in
:mod:`.local_auth` (ReserveNow without ``evseId`` takes the first free EVSE); a reserved
EVSE reports ``Reserved``, a cancelled reservation ``Available`` again. GetTransactionStatus
says whether a transaction still runs; no messages are ever queued here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ocpp.v201 import call_result

from oye_cli.simulator.ocpp_peer import Ocpp201Peer, after, on
from oye_cli.simulator.state import ChargerState, Connector, FollowUp


class ManagementV201(Ocpp201Peer):
    """The handlers; :class:`~.v201.ChargerV201` adds the rest (and ``status``)."""

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
        version_number: int,
        update_type: str,
        local_authorization_list: list[dict[str, Any]] | None = None,
        **_: Any,
    ) -> Any:
        entries = [
            (entry["id_token"]["id_token"], (entry.get("id_token_info") or {}).get("status"))
            for entry in local_authorization_list or []
        ]
        status = self.state.local.update(version_number, update_type, entries)
        return call_result.SendLocalList(status)

    @on("GetTransactionStatus")
    def on_get_transaction_status(self, transaction_id: str | None = None, **_: Any) -> Any:
        ongoing = None
        if transaction_id is not None:
            ongoing = self.state.transaction(transaction_id) is not None
        return call_result.GetTransactionStatus(messages_in_queue=False, ongoing_indicator=ongoing)

    def _evse_to_reserve(self, evse_id: int | None) -> Connector | None:
        if evse_id is not None:
            return self.state.connector(evse_id) if evse_id else None
        reserved = set(self.state.local.reservations.values())
        free = [
            c
            for c in self.state.connectors.values()
            if c.operative and c.transaction is None and c.id not in reserved
        ]
        return free[0] if free else next(iter(self.state.connectors.values()), None)

    @on("ReserveNow")
    def on_reserve_now(self, id: int, evse_id: int | None = None, **_: Any) -> Any:
        return call_result.ReserveNow(self.state.local.reserve(id, self._evse_to_reserve(evse_id)))

    @after("ReserveNow")
    def after_reserve_now(self, id: int, **_: Any) -> None:
        evse = self.state.local.reservations.get(id)
        connector = self.state.connector(evse) if evse is not None else None
        if connector is not None and connector.status != "Reserved":
            self._follow_up(self.status(connector.id, "Reserved"))

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
