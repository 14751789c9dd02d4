"""Nothing billed is lost: what a 1.6 charger did while its CSMS was unreachable reaches
the CSMS, in order, with the CSMS's own transaction ids, when it is back — with real OCPP
peers on both sides. The 2.0.1 side is in test_offline_replay_201.py."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

import ocpp.v16.call as call16
import pytest
from nats.aio.client import Client

from oye_cli.simulator.charger import SimulatedCharger, charger_url
from oye_cli.simulator.frame_log import is_call
from oye_relay.transaction_ids import FIRST
from oye_shared import headers as h
from oye_shared.frames import MessageType
from oye_shared.replay import charger_backlog
from oye_shared.settings import Settings
from tests.conftest import free_port
from tests.peers.csms import ChargerHandle, CsmsServer
from tests.support.relay import event_body, eventually, relay_running, watching
from tests.support.replay import (
    CSMS_FIRST_ID,
    TAGS,
    connect_when_listening,
    csms_and_relay,
    csms_comes_back,
    csms_goes_down,
    received_calls,
    relay_process,
)
from tests.support.stack import stack_running

pytestmark = pytest.mark.integration


def billed_energy(calls: list[tuple[str, dict[str, Any]]], transaction_id: int) -> int:
    start = next(p for a, p in calls if a == "StartTransaction")
    stop = next(
        p for a, p in calls if a == "StopTransaction" and p["transactionId"] == transaction_id
    )
    return int(stop["meterStop"]) - int(start["meterStart"])


async def test_a_16_session_while_the_csms_is_down_reaches_it_in_order_with_its_own_ids(
    settings: Settings, nc: Client
) -> None:
    async with (
        csms_and_relay(settings) as (csms, relay),
        watching(nc, "oye.>") as bus,
        SimulatedCharger(relay.url("CP-R1"), "CP-R1", version="1.6") as charger,
    ):
        await charger.boot()
        await csms_goes_down(csms, bus)

        assert (await charger.authorize("TAG-1")).id_tag_info["status"] == "Accepted"
        await charger.status(1, "Preparing")
        started = await charger.start_transaction(1, "TAG-1", meter_start=1000)
        ours = started.transaction_id
        assert ours >= FIRST  # the proxy's id, from its own range
        await charger.meter_values(1, energy_wh=1500)
        await charger.meter_values(1, energy_wh=2500)
        await charger.stop_transaction(ours, meter_stop=3000)
        await charger.status(1, "Available")
        backlog = await charger_backlog(nc.jetstream(), "oye", "CP-R1")
        assert backlog.depth == 6  # statuses, start, two meter values, stop: not Authorize
        assert backlog.oldest is not None

        again = await csms_comes_back(csms, bus, "CP-R1")
        calls = received_calls(again)
        assert [a for a, _ in calls] == [
            "StatusNotification",
            "StartTransaction",
            "MeterValues",
            "MeterValues",
            "StopTransaction",
            "StatusNotification",
        ]
        theirs = CSMS_FIRST_ID
        named = [p["transactionId"] for a, p in calls if a in ("MeterValues", "StopTransaction")]
        assert named == [theirs, theirs, theirs]
        assert billed_energy(calls, theirs) == 2000  # what the charger metered
        replayed = [m for m in bus.messages if m.subject == "oye.frames.CP-R1.OFFLINE_REPLAY"]
        # One call at a time: each replayed CALL's answer came before the next CALL left.
        kinds = [json.loads(m.data)[0] for m in replayed]
        assert kinds == [MessageType.CALL, MessageType.CALLRESULT] * 6
        assert (await charger_backlog(nc.jetstream(), "oye", "CP-R1")).depth == 0
        # The charger noticed nothing: one answer to each of its CALLs, the proxy's.
        answered = [json.loads(f)[1] for f in charger.received]
        assert answered == [json.loads(f)[1] for f in charger.sent]

        # Online again: the next frame goes straight to the CSMS.
        await charger.heartbeat()
        assert received_calls(again)[-1][0] == "Heartbeat"


async def test_a_session_started_online_and_stopped_offline_arrives_whole(
    settings: Settings, nc: Client
) -> None:
    async with (
        csms_and_relay(settings) as (csms, relay),
        watching(nc, "oye.>") as bus,
        SimulatedCharger(relay.url("CP-R2"), "CP-R2", version="1.6") as charger,
    ):
        await charger.boot()
        started = await charger.start_transaction(1, "TAG-2", meter_start=100)
        assert started.transaction_id == CSMS_FIRST_ID  # born online: the CSMS's id
        await csms_goes_down(csms, bus)
        await charger.meter_values(1, energy_wh=700)
        await charger.stop_transaction(CSMS_FIRST_ID, meter_stop=900)

        again = await csms_comes_back(csms, bus, "CP-R2")
        calls = received_calls(again)
        assert [(a, p["transactionId"]) for a, p in calls] == [
            ("MeterValues", CSMS_FIRST_ID),
            ("StopTransaction", CSMS_FIRST_ID),
        ]
        assert calls[-1][1]["meterStop"] == 900


def tx_profile(transaction_id: int) -> dict[str, Any]:
    """A 1.6 TxProfile bound to ``transaction_id`` (the charger refuses an unknown one)."""
    return {
        "charging_profile_id": 3,
        "transaction_id": transaction_id,
        "stack_level": 0,
        "charging_profile_purpose": "TxProfile",
        "charging_profile_kind": "Absolute",
        "charging_schedule": {
            "start_schedule": "2020-01-01T00:00:00Z",
            "charging_rate_unit": "A",
            "charging_schedule_period": [{"start_period": 0, "limit": 16}],
        },
    }


def calls_in(frames: list[str]) -> list[list[Any]]:
    return [frame for frame in map(json.loads, frames) if frame[0] == MessageType.CALL]


async def the_csms_names_its_id_and_the_charger_stops(
    again: ChargerHandle, charger: SimulatedCharger, ours: int
) -> dict[str, Any]:
    """The CSMS binds a TxProfile to its id, then stops the transaction by it; the charger
    gets the proxy's id in both. Returns the StopTransaction the CSMS received."""
    profile = call16.SetChargingProfile(
        connector_id=1, cs_charging_profiles=tx_profile(CSMS_FIRST_ID)
    )
    assert (await again.call(profile)).status == "Accepted"  # the charger knew our id
    stopped = await again.call(call16.RemoteStopTransaction(transaction_id=CSMS_FIRST_ID))
    assert stopped.status == "Accepted"
    sent = [calls_in(again.frames.sent)[-2:], calls_in(charger.received)[-2:]]
    for (set_profile, remote_stop), named in zip(sent, (CSMS_FIRST_ID, ours), strict=True):
        assert set_profile[2] == "SetChargingProfile"
        assert set_profile[3]["csChargingProfiles"]["transactionId"] == named
        assert remote_stop[2:] == ["RemoteStopTransaction", {"transactionId": named}]
    async with asyncio.timeout(10):
        stop = await again.frames.wait_for(is_call("StopTransaction"))
    payload: dict[str, Any] = stop.payload
    return payload


async def test_a_session_started_offline_is_stopped_online_and_by_the_csms_with_its_id(
    settings: Settings, nc: Client
) -> None:
    """After the replay, frames naming the proxy's id reach the CSMS with the CSMS's id, and
    a TxProfile and a RemoteStopTransaction naming the CSMS's id reach the charger with the
    proxy's: the profile is taken and the charger's transaction stops."""
    async with (
        csms_and_relay(settings) as (csms, relay),
        watching(nc, "oye.>") as bus,
        SimulatedCharger(relay.url("CP-R3"), "CP-R3", version="1.6") as charger,
    ):
        await charger.boot()
        await csms_goes_down(csms, bus)
        ours = (await charger.start_transaction(1, "TAG-3", meter_start=0)).transaction_id
        again = await csms_comes_back(csms, bus, "CP-R3")
        assert [a for a, _ in received_calls(again)] == ["StartTransaction"]

        await charger.meter_values(1, energy_wh=1234)
        assert received_calls(again)[-1][1]["transactionId"] == CSMS_FIRST_ID

        stop = await the_csms_names_its_id_and_the_charger_stops(again, charger, ours)
        assert stop["transactionId"] == CSMS_FIRST_ID
        assert stop["meterStop"] == 1234
        assert billed_energy(received_calls(again), CSMS_FIRST_ID) == 1234


async def test_a_message_the_csms_rejects_is_retried_then_set_aside_as_an_event(
    settings: Settings, nc: Client
) -> None:
    async with (
        csms_and_relay(settings.model_copy(update={"replay_attempts": 2})) as (csms, relay),
        watching(nc, "oye.>") as bus,
        SimulatedCharger(relay.url("CP-R5"), "CP-R5", version="1.6") as charger,
    ):
        await charger.boot()
        await csms_goes_down(csms, bus)
        await charger.status(1, "Charging")
        await charger.data_transfer("acme")  # not kept
        await charger.start_transaction(1, "TAG-5", meter_start=5)
        csms.failing.add("StatusNotification")

        again = await csms_comes_back(csms, bus, "CP-R5")
        rejected = [event_body(m) for m in bus.messages if m.subject.endswith(".replay_rejected")]
        assert len(rejected) == 1
        assert rejected[0]["action"] == "StatusNotification"
        assert rejected[0]["attempts"] == 2
        assert "InternalError" in rejected[0]["reason"]
        assert json.loads(rejected[0]["frame"])[3]["status"] == "Charging"
        # Sent twice, then the queue moved on to the next message.
        assert [a for a, _ in received_calls(again)] == [
            "StatusNotification",
            "StatusNotification",
            "StartTransaction",
        ]
        assert (await charger_backlog(nc.jetstream(), "oye", "CP-R5")).depth == 0


async def test_a_refused_replayed_start_is_reported_and_not_sent_twice(
    settings: Settings, nc: Client
) -> None:
    async with (
        csms_and_relay(settings) as (csms, relay),
        watching(nc, "oye.>") as bus,
        SimulatedCharger(relay.url("CP-R6"), "CP-R6", version="1.6") as charger,
    ):
        await charger.boot()
        await csms_goes_down(csms, bus)
        ours = (await charger.start_transaction(1, "STOLEN", meter_start=0)).transaction_id
        await charger.stop_transaction(ours, meter_stop=10)
        csms.start_status = "Blocked"
        again = await csms_comes_back(csms, bus, "CP-R6")
        rejected = [event_body(m) for m in bus.messages if m.subject.endswith(".replay_rejected")]
        assert [(r["action"], r["attempts"]) for r in rejected] == [("StartTransaction", 1)]
        assert "Blocked" in rejected[0]["reason"]
        calls = received_calls(again)
        assert [a for a, _ in calls] == ["StartTransaction", "StopTransaction"]
        assert calls[1][1]["transactionId"] == CSMS_FIRST_ID  # still its own transaction


def meter_values_of(transaction_id: int, wh: str) -> call16.MeterValues:
    """A MeterValues naming a transaction the (new) simulator instance does not know."""
    sample = {"timestamp": "2026-01-01T00:00:00Z", "sampled_value": [{"value": wh}]}
    return call16.MeterValues(connector_id=1, transaction_id=transaction_id, meter_value=[sample])


# -- a relay killed during the outage ------------------------------------------------------


async def test_a_relay_killed_during_the_outage_loses_and_doubles_nothing(
    settings: Settings, nc: Client
) -> None:
    cp = "CP R7"
    async with CsmsServer(first_transaction_id=CSMS_FIRST_ID) as csms:
        configured = settings.model_copy(update={"upstream_url": csms.url})
        url = charger_url(f"ws://127.0.0.1:{settings.ocpp_port}/ocpp", cp)
        async with watching(nc, "oye.>") as bus:
            async with relay_process(configured) as first:
                charger = await connect_when_listening(SimulatedCharger(url, cp))
                await charger.boot()
                await csms.stop()
                await bus.wait_for(lambda m: m.subject.endswith(".upstream_down"))
                ours = (await charger.start_transaction(1, "TAG-7", meter_start=10)).transaction_id
                await charger.meter_values(1, energy_wh=20)
                first.send_signal(signal.SIGKILL)  # no goodbye, no flush
                await first.wait()
                await charger.wait_closed()
            assert (await charger_backlog(nc.jetstream(), "oye", cp)).depth == 2

            async with relay_process(configured):
                await connect_when_listening(charger)  # the same charger, its transaction on
                await charger.meter_values(1, energy_wh=30)
                await charger.stop_transaction(ours, meter_stop=40)
                await csms.start()
                await bus.wait_for(lambda m: m.subject.endswith(".replayed"), seconds=20)
                async with asyncio.timeout(5):
                    again = await csms.wait_for_charger(cp)
                calls = received_calls(again)
                assert [a for a, _ in calls] == [
                    "StartTransaction",
                    "MeterValues",
                    "MeterValues",
                    "StopTransaction",
                ]
                assert {p["transactionId"] for a, p in calls[1:]} == {CSMS_FIRST_ID}
                assert billed_energy(calls, CSMS_FIRST_ID) == 30
                assert (await charger_backlog(nc.jetstream(), "oye", cp)).depth == 0
                await charger.close()


async def test_the_api_shows_the_backlog_per_charger_and_in_total(
    settings: Settings, nc: Client
) -> None:
    async with CsmsServer(first_transaction_id=CSMS_FIRST_ID) as csms:
        configured = settings.model_copy(update={"upstream_url": csms.url, "offline_id_tags": TAGS})
        async with (
            stack_running(configured) as stack,
            stack.client() as api,
            watching(nc, "oye.>") as bus,
            SimulatedCharger(stack.relay.url("CP-R8"), "CP-R8", version="1.6") as charger,
        ):
            await charger.boot()
            await csms_goes_down(csms, bus)
            await charger.start_transaction(1, "TAG-1", meter_start=0)
            await charger.meter_values(1, energy_wh=10)

            detail = (await api.get("/api/chargers/CP-R8")).json()
            assert detail["replayBacklog"] == 2
            assert detail["replayOldest"].endswith("Z")
            assert (await api.get("/health")).json()["replayBacklog"] == 2

            await csms_comes_back(csms, bus, "CP-R8")
            detail = (await api.get("/api/chargers/CP-R8")).json()
            assert (detail["replayBacklog"], detail["replayOldest"]) == (0, None)
            assert (await api.get("/health")).json()["replayBacklog"] == 0


async def test_a_charger_back_after_its_csms_has_its_queue_replayed_before_anything_new(
    settings: Settings, nc: Client
) -> None:
    """The queue is found at the next connect (read during the CSMS's handshake)."""
    async with csms_and_relay(settings) as (csms, relay), watching(nc, "oye.>") as bus:
        async with SimulatedCharger(relay.url("CP-R9"), "CP-R9", version="1.6") as charger:
            await charger.boot()
            await csms_goes_down(csms, bus)
            ours = (await charger.start_transaction(1, "TAG-1", meter_start=0)).transaction_id
            await charger.stop_transaction(ours, meter_stop=50)
        await csms.start()
        async with SimulatedCharger(relay.url("CP-R9"), "CP-R9", version="1.6") as charger:
            await charger.boot()
            async with asyncio.timeout(5):
                handle = await csms.wait_for_charger("CP-R9")

            async def all_three() -> bool:
                return len(received_calls(handle)) == 3

            await eventually(all_three)
            assert [a for a, _ in received_calls(handle)] == [
                "StartTransaction",
                "StopTransaction",
                "BootNotification",
            ]
            assert received_calls(handle)[1][1]["transactionId"] == CSMS_FIRST_ID


async def test_another_relay_that_takes_the_charger_over_replays_its_queue(
    settings: Settings, nc: Client
) -> None:
    async with CsmsServer(first_transaction_id=CSMS_FIRST_ID) as csms:
        first = settings.model_copy(update={"upstream_url": csms.url, "offline_id_tags": TAGS})
        second = first.model_copy(update={"ocpp_port": free_port(), "relay_id": "relay-other"})
        async with (
            relay_running(first) as first_relay,
            relay_running(second) as second_relay,
            watching(nc, "oye.>") as bus,
        ):
            async with SimulatedCharger(first_relay.url("CP-RA"), "CP-RA") as charger:
                await charger.boot()
                await csms_goes_down(csms, bus)
                ours = (await charger.start_transaction(1, "TAG-1", meter_start=0)).transaction_id
            await csms.start()
            async with SimulatedCharger(second_relay.url("CP-RA"), "CP-RA") as charger:
                done = await bus.wait_for(lambda m: m.subject.endswith(".replayed"), seconds=20)
                assert (done.headers or {})[h.RELAY] == "relay-other"
                await charger.call(meter_values_of(ours, "5"))
                async with asyncio.timeout(5):
                    handle = await csms.wait_for_charger("CP-RA")
                calls = received_calls(handle)
                assert [a for a, _ in calls] == ["StartTransaction", "MeterValues"]
                assert calls[1][1]["transactionId"] == CSMS_FIRST_ID != ours


async def test_the_csms_ids_learned_before_a_relay_restart_are_rewritten_after_it(
    settings: Settings, nc: Client
) -> None:
    """The id map lives on NATS: a relay started after the replay still rewrites the ids
    both ways, MeterValues and StopTransaction up, a TxProfile and RemoteStop down."""
    cp = "CP-RC"
    async with CsmsServer(first_transaction_id=CSMS_FIRST_ID) as csms:
        configured = settings.model_copy(update={"upstream_url": csms.url, "offline_id_tags": TAGS})
        charger = SimulatedCharger(charger_url(f"ws://127.0.0.1:{settings.ocpp_port}/ocpp", cp), cp)
        async with watching(nc, "oye.>") as bus:
            async with relay_running(configured):
                await charger.connect()
                await charger.boot()
                await csms_goes_down(csms, bus)
                ours = (await charger.start_transaction(1, "TAG-1", meter_start=100)).transaction_id
                first = await csms_comes_back(csms, bus, cp)
                assert [a for a, _ in received_calls(first)] == ["StartTransaction"]
            await charger.wait_closed()  # that relay is gone, and its memory with it

            async with relay_running(configured):
                await charger.connect()  # the same charger, its transaction on
                async with asyncio.timeout(5):
                    again = await csms.wait_for_charger(cp, newer_than=first)
                await charger.meter_values(1, energy_wh=600)
                assert received_calls(again)[-1][1]["transactionId"] == CSMS_FIRST_ID
                stop = await the_csms_names_its_id_and_the_charger_stops(again, charger, ours)
                assert (stop["transactionId"], stop["meterStop"]) == (CSMS_FIRST_ID, 600)
                await charger.close()


def is_forwarded_to(csms: CsmsServer, charge_point_id: str) -> bool:
    return any(shake.charge_point_id == charge_point_id for shake in csms.handshakes)


async def test_nothing_is_kept_when_forwarding_is_switched_off(
    settings: Settings, nc: Client
) -> None:
    """A CSMS the owner switched off is not missing anything: the proxy answers, keeps
    nothing, and the CSMS gets no replay."""
    async with CsmsServer(first_transaction_id=CSMS_FIRST_ID) as csms:
        configured = settings.model_copy(update={"upstream_url": csms.url, "offline_id_tags": TAGS})
        async with (
            stack_running(configured) as stack,
            stack.client() as api,
            watching(nc, "oye.>") as bus,
            SimulatedCharger(stack.relay.url("CP-RD"), "CP-RD") as charger,
        ):
            await charger.boot()
            assert is_forwarded_to(csms, "CP-RD")
            off = await api.post("/api/config", json={"csmsForwardingEnabled": False})
            assert off.json()["csmsForwardingEnabled"] is False
            probes = iter(range(1000))

            async def the_relay_has_it() -> bool:
                """A charger connecting now is no longer forwarded (the relay follows KV)."""
                probe = f"CP-PROBE-{next(probes)}"
                async with SimulatedCharger(stack.relay.url(probe), probe):
                    pass
                return not is_forwarded_to(csms, probe)

            await eventually(the_relay_has_it)
            await csms_goes_down(csms, bus)
            ours = (await charger.start_transaction(1, "TAG-1", meter_start=0)).transaction_id
            assert ours >= FIRST  # answered by the proxy
            await charger.stop_transaction(ours, meter_stop=10)
            await charger.status(1, "Available")
            assert (await charger_backlog(nc.jetstream(), "oye", "CP-RD")).depth == 0
            assert (await api.get("/api/chargers/CP-RD")).json()["replayBacklog"] == 0


async def test_nothing_is_kept_without_a_csms(settings: Settings, nc: Client) -> None:
    """Standalone, there is no CSMS to catch up: the proxy answers and keeps nothing."""
    standalone = settings.model_copy(update={"upstream_url": None, "offline_id_tags": TAGS})
    async with (
        relay_running(standalone) as relay,
        SimulatedCharger(relay.url("CP-RE"), "CP-RE") as charger,
    ):
        await charger.boot()
        ours = (await charger.start_transaction(1, "TAG-1", meter_start=0)).transaction_id
        assert ours >= FIRST  # answered by the proxy
        await charger.meter_values(1, energy_wh=5)
        await charger.stop_transaction(ours, meter_stop=10)
        assert (await charger_backlog(nc.jetstream(), "oye", "CP-RE")).depth == 0
