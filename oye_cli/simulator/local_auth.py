"""The local authorization list and the reservations of a simulated charger. Pure.

Both versions: SendLocalList replaces the list (``Full``) or changes it (``Differential``,
which must bring a newer version, else ``VersionMismatch``); GetLocalListVersion reads the
version (0: no list). ReserveNow reserves one connector / EVSE for a tag: ``Rejected`` for
an unknown one or connector 0 (``ReserveConnectorZeroSupported`` is false),
``Unavailable`` when it is inoperative, ``Occupied`` while a transaction runs or another
reservation holds it; the same reservation id again replaces the reservation.
CancelReservation frees it. Reservations do not expire here (the simulator keeps no
timers for them); cancel them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from oye_cli.simulator.state import Connector


@dataclass
class LocalAuthorization:
    """The local list (tag -> status) with its version, and reservations by id."""

    version: int = 0
    tags: dict[str, str] = field(default_factory=dict)
    reservations: dict[int, int] = field(default_factory=dict)  # reservation id -> connector

    def update(
        self, version: int, update_type: str, entries: Iterable[tuple[str, str | None]]
    ) -> str:
        """Apply a SendLocalList; its status. ``entries``: (tag, status or None to remove)."""
        if update_type == "Differential" and version <= self.version:
            return "VersionMismatch"
        if update_type == "Full":
            self.tags.clear()
        for tag, status in entries:
            if status is None:
                self.tags.pop(tag, None)
            else:
                self.tags[tag] = status
        self.version = version
        return "Accepted"

    def reserve(self, reservation_id: int, connector: Connector | None) -> str:
        """Apply a ReserveNow on ``connector`` (``None``: no such connector); its status."""
        if connector is None:
            return "Rejected"
        if not connector.operative:
            return "Unavailable"
        held_by = {c: r for r, c in self.reservations.items()}.get(connector.id)
        if connector.transaction is not None or held_by not in (None, reservation_id):
            return "Occupied"
        self.reservations[reservation_id] = connector.id
        return "Accepted"

    def cancel(self, reservation_id: int) -> int | None:
        """Apply a CancelReservation; the connector it freed, ``None`` if there was none."""
        return self.reservations.pop(reservation_id, None)
