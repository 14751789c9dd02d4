"""What a simulated charger remembers, whatever OCPP version it speaks.

Connectors are numbered from 1. In 2.0.1 terms connector *n* is EVSE *n* with a single
connector (id 1) — the model the simulator uses for both versions.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from oye_cli.simulator.local_auth import LocalAuthorization
from oye_cli.simulator.ocpp_peer import utc_now
from oye_cli.simulator.smart_charging import CompositeSchedule, ProfileStore

#: DataTransfer with this vendorId is answered (data echoed); others get UnknownVendorId.
VENDOR_ID = "OYE"
Clock = Callable[[], datetime]
#: Starts a follow-up (a CALL after a reply) as a task its charger owns.
FollowUp = Callable[[Coroutine[Any, Any, Any]], None]


@dataclass
class Transaction:
    """A running transaction; ``id`` is the CSMS's integer (1.6, as text) or ours (2.0.1)."""

    id: str
    connector: int
    id_tag: str
    started_at: datetime
    meter_start: int
    seq_no: int = 0
    remote_start_id: int | None = None


@dataclass
class Connector:
    """One connector (1.6) / EVSE (2.0.1)."""

    id: int
    status: str = "Available"
    operative: bool = True
    pending_operative: bool | None = None  # a ChangeAvailability answered "Scheduled"
    transaction: Transaction | None = None
    meter_wh: int = 0
    meter_fraction_wh: Decimal = Decimal(0)  # what the whole-Wh register has not shown yet


@dataclass
class ChargerState:
    """Connectors, transactions, profiles, the local list and reservations, and a record
    of what the CSMS asked for."""

    connectors: dict[int, Connector]
    hardware_max_amps: Decimal = Decimal(32)
    profiles: ProfileStore = field(default_factory=ProfileStore)
    local: LocalAuthorization = field(default_factory=LocalAuthorization)
    clock: Clock = utc_now
    resets: list[str] = field(default_factory=list)
    unlocks: list[int] = field(default_factory=list)
    data_transfers: list[dict[str, Any]] = field(default_factory=list)
    triggers: list[str] = field(default_factory=list)

    @classmethod
    def with_connectors(
        cls, count: int, *, hardware_max_amps: Decimal = Decimal(32), clock: Clock = utc_now
    ) -> ChargerState:
        connectors = {n: Connector(n) for n in range(1, count + 1)}
        return cls(connectors, hardware_max_amps=hardware_max_amps, clock=clock)

    def now(self) -> datetime:
        return self.clock()

    def connector(self, connector_id: int) -> Connector | None:
        return self.connectors.get(connector_id)

    def transactions(self) -> list[Transaction]:
        return [c.transaction for c in self.connectors.values() if c.transaction]

    def transaction(self, transaction_id: str) -> Transaction | None:
        return next((t for t in self.transactions() if t.id == transaction_id), None)

    def affected(self, connector_id: int | None) -> list[Connector]:
        """The connectors a command for ``connector_id`` targets (0 or ``None`` = all)."""
        if not connector_id:
            return list(self.connectors.values())
        found = self.connector(connector_id)
        return [found] if found else []

    def end_transaction(self, transaction: Transaction) -> Connector:
        """Forget a finished transaction and its TxProfiles; apply a scheduled availability."""
        connector = self.connectors[transaction.connector]
        connector.transaction = None
        self.profiles.remove(self.profiles.select(connector=connector.id, purpose="TxProfile"))
        if connector.pending_operative is not None:
            connector.operative = connector.pending_operative
            connector.pending_operative = None
        return connector

    def change_availability(self, connector_id: int | None, operative: bool) -> str:
        """ChangeAvailability: Scheduled if a transaction runs on a target, else Accepted."""
        targets = self.affected(connector_id)
        if not targets:
            return "Rejected"
        if any(c.transaction for c in targets):
            for connector in targets:
                connector.pending_operative = operative
            return "Scheduled"
        for connector in targets:
            connector.operative = operative
        return "Accepted"

    def availability_changes(self, connector_id: int | None) -> list[tuple[int, str]]:
        """(connector, status) pairs to notify after a ChangeAvailability took effect."""
        changes = []
        for connector in self.affected(connector_id):
            wanted = "Available" if connector.operative else "Unavailable"
            if connector.transaction is None and connector.status != wanted:
                changes.append((connector.id, wanted))
        return changes

    def reboot(self) -> None:
        """After a reboot: connectors without a transaction are Available (the car is gone),
        Unavailable when inoperative, Reserved while a reservation holds them."""
        reserved = set(self.local.reservations.values())
        for connector in self.connectors.values():
            if connector.transaction is not None:
                continue
            if not connector.operative:
                connector.status = "Unavailable"
            else:
                connector.status = "Reserved" if connector.id in reserved else "Available"

    def data_transfer(self, vendor_id: str, message_id: str | None, data: Any) -> str:
        """Record an incoming DataTransfer; its status (the spec's answer to strangers)."""
        self.data_transfers.append({"vendor_id": vendor_id, "message_id": message_id, "data": data})
        return "Accepted" if vendor_id == VENDOR_ID else "UnknownVendorId"

    def composite(
        self, connector_id: int, duration: int, unit: str | None
    ) -> CompositeSchedule | None:
        """The composite schedule of a connector (0 = charger); ``None`` if it does not exist."""
        connector = self.connector(connector_id)
        if connector_id != 0 and connector is None:
            return None
        transaction = connector.transaction if connector else None
        return self.profiles.composite(
            connector_id,
            self.now(),
            duration,
            unit or "A",
            transaction_start=transaction.started_at if transaction else None,
            hardware_max_amps=self.hardware_max_amps,
        )

    def offered_power_w(self, connector_id: int) -> Decimal:
        """The power the composite schedule allows on a connector now, in W (total)."""
        schedule = self.composite(connector_id, 1, "W")
        return schedule.periods[0].limit if schedule and schedule.periods else Decimal(0)

    def charge(self, connector: Connector, seconds: float) -> Decimal:
        """Let ``seconds`` of charging pass on ``connector``: the EV draws all the power it is
        offered, the energy register advances (in whole Wh); the power drawn, in W."""
        power = self.offered_power_w(connector.id)
        energy = power * Decimal(str(seconds)) / 3600 + connector.meter_fraction_wh
        whole = int(energy)
        connector.meter_wh += whole
        connector.meter_fraction_wh = energy - whole
        return power
