"""Nothing billed is lost, 2.0.1: TransactionEvents a charger sent while its CSMS was
unreachable reach the CSMS in order, marked ``offline`` with their own ``seqNo`` and
timestamps, when it is back — with real OCPP peers on both sides."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

import ocpp.v201.call as call201
import pytest
from nats.aio.client import Client

from oye_cli.simulator.charger import SimulatedCharger, charger_url
from oye_cli.simulator.frame_log import RecordedFrame
from oye_shared.replay import charger_backlog
from oye_shared.settings import Settings
from tests.peers.csms import CsmsServer
from tests.support.relay import event_body, watching
from tests.support.replay import (
    CSMS_FIRST_ID,
    connect_when_listening,
    csms_and_relay,
    csms_comes_back,
    csms_goes_down,
    received_calls,
    relay_process,
)

pytestmark = pytest.mark.integration


def transaction_events(calls: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [payload for action, payload in calls if action == "TransactionEvent"]


def sent_events(charger: SimulatedCharger) -> list[dict[str, Any]]:
    """The TransactionEvents the charger sent, as it sent them."""
    calls = [json.loads(text) for text in charger.sent]
    return [call[3] for call in calls if call[2:3] == ["TransactionEvent"]]


def register_wh(event: dict[str, Any]) -> float:
    """The energy register an event carries (Energy.Active.Import.Register)."""
    (sample,) = event["meterValue"][0]["sampledValue"]
    assert sample["measurand"] == "Energy.Active.Import.Register"
    return float(sample["value"])


def billed_energy(events: list[dict[str, Any]]) -> float:
    """What the CSMS can bill from the events it has: Ended's register minus Started's."""
    by_type = {event["eventType"]: event for event in events}
    return register_wh(by_type["Ended"]) - register_wh(by_type["Started"])


async def test_a_201_session_while_the_csms_is_down_is_replayed_marked_offline(
    settings: Settings, nc: Client
) -> None:
    async with (
        csms_and_relay(settings) as (csms, relay),
        watching(nc, "oye.>") as bus,
        SimulatedCharger(relay.url("CP-R4"), "CP-R4", version="2.0.1") as charger,
    ):
        await charger.boot()
        await csms_goes_down(csms, bus)
        authorized = await charger.authorize("TAG-1")
        assert authorized.id_token_info["status"] == "Accepted"
        await charger.status(1, "Occupied")
        await charger.transaction_event(
            "Started", trigger_reason="Authorized", id_tag="TAG-1", energy_wh=1000
        )
        await charger.transaction_event(
            "Updated", trigger_reason="MeterValuePeriodic", energy_wh=1800
        )
        await charger.transaction_event("Ended", trigger_reason="StopAuthorized", energy_wh=2600)
        await charger.status(1, "Available")
        sent = sent_events(charger)

        again = await csms_comes_back(csms, bus, "CP-R4")
        calls = received_calls(again)
        assert [a for a, _ in calls] == [  # in order; Authorize is not kept
            "StatusNotification",
            "TransactionEvent",
            "TransactionEvent",
            "TransactionEvent",
            "StatusNotification",
        ]
        events = transaction_events(calls)
        assert [e["eventType"] for e in events] == ["Started", "Updated", "Ended"]
        assert all(e["offline"] is True for e in events)
        for original, replayed in zip(sent, events, strict=True):
            assert replayed["seqNo"] == original["seqNo"]
            assert replayed["timestamp"] == original["timestamp"]
            assert replayed["transactionInfo"] == original["transactionInfo"]
            assert replayed["meterValue"] == original["meterValue"]
        assert billed_energy(events) == 1600  # what the charger metered
        answered = [json.loads(f)[1] for f in charger.received]
        assert answered == [json.loads(f)[1] for f in charger.sent]  # the charger noticed nothing


async def test_a_201_transaction_started_online_and_ended_offline_arrives_whole(
    settings: Settings, nc: Client
) -> None:
    async with (
        csms_and_relay(settings) as (csms, relay),
        watching(nc, "oye.>") as bus,
        SimulatedCharger(relay.url("CP-RB"), "CP-RB", version="2.0.1") as charger,
    ):
        await charger.boot()
        await charger.transaction_event("Started", trigger_reason="Authorized", energy_wh=0)
        first = await csms.wait_for_charger("CP-RB")
        await csms_goes_down(csms, bus)
        await charger.transaction_event(
            "Updated", trigger_reason="MeterValuePeriodic", energy_wh=500
        )
        await charger.transaction_event("Ended", trigger_reason="StopAuthorized", energy_wh=900)

        again = await csms_comes_back(csms, bus, "CP-RB")
        started = transaction_events(received_calls(first))
        later = transaction_events(received_calls(again))
        assert [e["eventType"] for e in started + later] == ["Started", "Updated", "Ended"]
        assert [e["seqNo"] for e in started + later] == [0, 1, 2]
        assert "offline" not in started[0]  # sent live, untouched
        assert all(e["offline"] is True for e in later)
        assert {e["transactionInfo"]["transactionId"] for e in started + later} == {
            started[0]["transactionInfo"]["transactionId"]
        }
        assert billed_energy(started + later) == 900


def is_ended(recorded: RecordedFrame) -> bool:
    payload = recorded.payload
    return (
        recorded.action == "TransactionEvent"
        and isinstance(payload, dict)
        and payload.get("eventType") == "Ended"
    )


async def test_a_201_transaction_started_offline_is_ended_online_by_the_csms(
    settings: Settings, nc: Client
) -> None:
    """The charger's own transaction id names it both ways: no mapping, and the CSMS's
    RequestStopTransaction after the replay ends it live."""
    async with (
        csms_and_relay(settings) as (csms, relay),
        watching(nc, "oye.>") as bus,
        SimulatedCharger(relay.url("CP-RF"), "CP-RF", version="2.0.1") as charger,
    ):
        await charger.boot()
        await csms_goes_down(csms, bus)
        await charger.transaction_event(
            "Started", trigger_reason="Authorized", id_tag="TAG-3", energy_wh=100
        )
        await charger.transaction_event(
            "Updated", trigger_reason="MeterValuePeriodic", energy_wh=400
        )
        transaction_id = sent_events(charger)[0]["transactionInfo"]["transactionId"]

        again = await csms_comes_back(csms, bus, "CP-RF")
        stop = await again.call(call201.RequestStopTransaction(transaction_id=transaction_id))
        assert stop.status == "Accepted"
        async with asyncio.timeout(10):
            await again.frames.wait_for(is_ended)
        events = transaction_events(received_calls(again))
        assert [(e["eventType"], e["seqNo"]) for e in events] == [
            ("Started", 0),
            ("Updated", 1),
            ("Ended", 2),
        ]
        assert [e.get("offline") for e in events] == [True, True, None]  # the last one live
        assert {e["transactionInfo"]["transactionId"] for e in events} == {transaction_id}
        assert billed_energy(events) == 300


async def test_a_201_message_the_csms_rejects_is_retried_then_set_aside_as_an_event(
    settings: Settings, nc: Client
) -> None:
    async with (
        csms_and_relay(settings.model_copy(update={"replay_attempts": 2})) as (csms, relay),
        watching(nc, "oye.>") as bus,
        SimulatedCharger(relay.url("CP-RG"), "CP-RG", version="2.0.1") as charger,
    ):
        await charger.boot()
        await csms_goes_down(csms, bus)
        await charger.transaction_event("Started", trigger_reason="Authorized", energy_wh=0)
        await charger.status(1, "Occupied")
        csms.failing.add("TransactionEvent")

        again = await csms_comes_back(csms, bus, "CP-RG")
        rejected = [event_body(m) for m in bus.messages if m.subject.endswith(".replay_rejected")]
        assert [(r["action"], r["attempts"]) for r in rejected] == [("TransactionEvent", 2)]
        assert "InternalError" in rejected[0]["reason"]
        frame = json.loads(rejected[0]["frame"])[3]
        assert (frame["eventType"], frame["offline"]) == ("Started", True)  # as sent to it
        # Sent twice, then the queue moved on to the next message.
        assert [a for a, _ in received_calls(again)] == [
            "TransactionEvent",
            "TransactionEvent",
            "StatusNotification",
        ]
        assert (await charger_backlog(nc.jetstream(), "oye", "CP-RG")).depth == 0


async def test_a_201_relay_killed_during_the_outage_loses_and_doubles_nothing(
    settings: Settings, nc: Client
) -> None:
    cp = "CP RH"
    async with CsmsServer(first_transaction_id=CSMS_FIRST_ID) as csms:
        configured = settings.model_copy(update={"upstream_url": csms.url})
        url = charger_url(f"ws://127.0.0.1:{settings.ocpp_port}/ocpp", cp)
        charger = SimulatedCharger(url, cp, version="2.0.1")
        async with watching(nc, "oye.>") as bus:
            async with relay_process(configured) as first:
                await connect_when_listening(charger)
                await charger.boot()
                await csms.stop()
                await bus.wait_for(lambda m: m.subject.endswith(".upstream_down"))
                await charger.transaction_event(
                    "Started", trigger_reason="Authorized", id_tag="TAG-7", energy_wh=10
                )
                await charger.transaction_event(
                    "Updated", trigger_reason="MeterValuePeriodic", energy_wh=20
                )
                first.send_signal(signal.SIGKILL)  # no goodbye, no flush
                await first.wait()
                await charger.wait_closed()
            assert (await charger_backlog(nc.jetstream(), "oye", cp)).depth == 2

            async with relay_process(configured):
                await connect_when_listening(charger)  # the same charger, its transaction on
                await charger.transaction_event(
                    "Updated", trigger_reason="MeterValuePeriodic", energy_wh=30
                )
                await charger.transaction_event(
                    "Ended", trigger_reason="StopAuthorized", energy_wh=40
                )
                await csms.start()
                await bus.wait_for(lambda m: m.subject.endswith(".replayed"), seconds=20)
                async with asyncio.timeout(5):
                    again = await csms.wait_for_charger(cp)
                events = transaction_events(received_calls(again))
                assert [(e["eventType"], e["seqNo"]) for e in events] == [
                    ("Started", 0),
                    ("Updated", 1),
                    ("Updated", 2),
                    ("Ended", 3),
                ]
                assert len({e["transactionInfo"]["transactionId"] for e in events}) == 1
                assert all(e["offline"] is True for e in events)
                assert billed_energy(events) == 30
                assert (await charger_backlog(nc.jetstream(), "oye", cp)).depth == 0
                await charger.close()
