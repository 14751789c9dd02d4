"""A charging session as ``oye simulate`` plays it, in either OCPP version.

A car is plugged in and its id tag presented: Authorize, then (1.6) Preparing,
StartTransaction, Charging, or (2.0.1) Occupied, TransactionEvent Started. While a
transaction runs, the EV draws all the power the composite schedule offers
(:meth:`~.state.ChargerState.charge`), reported as MeterValues (1.6) or TransactionEvent
Updated (2.0.1) with the energy register and the power. A tag the CSMS refuses starts
nothing; one refused only at the start ends the transaction at once (DeAuthorized).
"""

from __future__ import annotations

from oye_cli.simulator.v16 import ChargerV16
from oye_cli.simulator.v201 import ChargerV201

Peer = ChargerV16 | ChargerV201


async def start_session(peer: Peer, connector: int, id_tag: str) -> str:
    """Authorize ``id_tag`` and charge on ``connector``; the authorization status
    (``"Accepted"``: the transaction runs)."""
    if isinstance(peer, ChargerV16):
        return await _start_v16(peer, connector, id_tag)
    return await _start_v201(peer, connector, id_tag)


async def _start_v16(peer: ChargerV16, connector: int, id_tag: str) -> str:
    authorized = await peer.authorize(id_tag)
    status: str = authorized.id_tag_info["status"]
    if status != "Accepted":
        return status
    await peer.status(connector, "Preparing")
    started = await peer.start_transaction(connector, id_tag)
    status = started.id_tag_info["status"]
    if status != "Accepted":
        await peer.stop_transaction(int(started.transaction_id), reason="DeAuthorized")
        await peer.status(connector, "Available")
        return status
    await peer.status(connector, "Charging")
    return status


async def _start_v201(peer: ChargerV201, connector: int, id_tag: str) -> str:
    authorized = await peer.authorize(id_tag)
    status: str = authorized.id_token_info["status"]
    if status != "Accepted":
        return status
    await peer.status(connector, "Occupied")
    started = await peer.transaction_event(
        "Started",
        evse=connector,
        trigger_reason="Authorized",
        id_tag=id_tag,
        charging_state="Charging",
    )
    if started.id_token_info is not None:
        status = started.id_token_info["status"]
    if status != "Accepted":
        await peer.transaction_event(
            "Ended",
            evse=connector,
            trigger_reason="Deauthorized",
            stopped_reason="DeAuthorized",
            charging_state="EVConnected",
        )
        await peer.status(connector, "Available")
    return status


async def report_meter(peer: Peer, seconds: float) -> int:
    """After ``seconds`` of charging, report every running transaction's meter; how many."""
    reported = 0
    for connector in list(peer.state.connectors.values()):
        if connector.transaction is None:
            continue
        power = float(peer.state.charge(connector, seconds))
        if isinstance(peer, ChargerV16):
            await peer.meter_values(connector.id, energy_wh=connector.meter_wh, power_w=power)
        else:
            await peer.transaction_event(
                "Updated",
                evse=connector.id,
                trigger_reason="MeterValuePeriodic",
                energy_wh=connector.meter_wh,
                power_w=power,
            )
        reported += 1
    return reported
