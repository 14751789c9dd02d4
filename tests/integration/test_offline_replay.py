"""Nothing billed is lost: what a charger did while its CSMS was unreachable reaches the
CSMS, in order, when it is back — with real OCPP peers on both sides (1.6 and 2.0.1)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import ocpp.v16.call as call16
import pytest
from nats.aio.client import Client

from oye_cli.simulator.charger import SimulatedCharger, charger_url
from oye_relay.transaction_ids import FIRST
from oye_shared import headers as h
from oye_shared.replay import charger_backlog
from oye_shared.settings import Settings
from tests.conftest import free_port
from tests.peers.csms import ChargerHandle, CsmsServer
from tests.support.relay import Watcher, event_body, eventually, relay_running, watching
from tests.support.stack import stack_running

pytestmark = pytest.mark.integration

CSMS_FIRST_ID = 500
TAGS = "TAG-1,TAG-2,TAG-3,TAG-5,TAG-7"  # accepted while the CSMS is away


@asynccontextmanager
async def csms_and_relay(settings: Settings) -> AsyncIterator[tuple[CsmsServer, Any]]:
    async with CsmsServer(first_transaction_id=CSMS_FIRST_ID) as csms:
        configured = settings.model_copy(
            update={"upstream_url": csms.url, "inject_timeout": 5.0, "offline_id_tags": TAGS}
        )
        async with relay_running(configured) as relay:
            yield csms, relay


async def csms_goes_down(csms: CsmsServer, bus: Watcher) -> None:
    before = events_seen(bus, "upstream_down")
    await csms.stop()
    await bus.wait_for(lambda _: events_seen(bus, "upstream_down") > before)


async def csms_comes_back(csms: CsmsServer, bus: Watcher, cp: str) -> ChargerHandle:
    """Start the CSMS again; return its new connection once the replay is over."""
    before = events_seen(bus, "replayed")
    await csms.start()
    await bus.wait_for(lambda _: events_seen(bus, "replayed") > before, seconds=20)
    async with asyncio.timeout(5):
        return await csms.wait_for_charger(cp)


def events_seen(bus: Watcher, kind: str) -> int:
    return sum(1 for m in bus.messages if ".events." in m.subject and m.subject.endswith(kind))


def received_calls(handle: ChargerHandle) -> list[tuple[str, dict[str, Any]]]:
    """(action, payload) of every CALL the CSMS received on this connection, in order."""
    return [
        (f.action or "", f.payload)
        for f in handle.frames.frames
        if f.direction == "received" and f.action is not None
    ]


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
        assert len(replayed) == 12  # six calls, six answers
        assert (await charger_backlog(nc.jetstream(), "oye", "CP-R1")).depth == 0

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


async def test_a_session_started_offline_is_stopped_online_and_by_the_csms_with_its_id(
    settings: Settings, nc: Client
) -> None:
    """After the replay, frames naming the proxy's id reach the CSMS with the CSMS's id, and
    a RemoteStopTransaction naming the CSMS's id stops the charger's transaction."""
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

        stopped = await again.call(call16.RemoteStopTransaction(transaction_id=CSMS_FIRST_ID))
        assert stopped.status == "Accepted"  # the charger knew the transaction by our id
        remote = await bus.wait_for(
            lambda m: m.subject == "oye.frames.CP-R3.DOWNSTREAM" and b"RemoteStop" in m.data
        )
        assert json.loads(remote.data)[3] == {"transactionId": CSMS_FIRST_ID}  # as sent
        assert any(
            json.loads(f)[2:] == ["RemoteStopTransaction", {"transactionId": ours}]
            for f in charger.received
        )
        async with asyncio.timeout(10):
            while not any(a == "StopTransaction" for a, _ in received_calls(again)):
                await bus.wait_for_count(len(bus.messages) + 1)
        stop = next(p for a, p in received_calls(again) if a == "StopTransaction")
        assert stop["transactionId"] == CSMS_FIRST_ID
        assert stop["meterStop"] == 1234


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
        await charger.transaction_event("Started", trigger_reason="Authorized", energy_wh=0)
        await charger.transaction_event(
            "Updated", trigger_reason="MeterValuePeriodic", energy_wh=800
        )
        await charger.transaction_event("Ended", trigger_reason="StopAuthorized", energy_wh=1600)
        sent = [
            json.loads(f)[3] for f in charger.sent if json.loads(f)[2:3] == ["TransactionEvent"]
        ]

        again = await csms_comes_back(csms, bus, "CP-R4")
        events = [p for a, p in received_calls(again) if a == "TransactionEvent"]
        assert [e["eventType"] for e in events] == ["Started", "Updated", "Ended"]
        assert all(e["offline"] is True for e in events)
        for original, replayed in zip(sent, events, strict=True):
            assert replayed["seqNo"] == original["seqNo"]
            assert replayed["timestamp"] == original["timestamp"]
            assert replayed["transactionInfo"] == original["transactionInfo"]
            assert replayed.get("meterValue") == original.get("meterValue")  # billable energy


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


@asynccontextmanager
async def relay_process(settings: Settings) -> AsyncIterator[asyncio.subprocess.Process]:
    """``oye relay`` as its own process (so that it can be SIGKILLed)."""
    env = {
        **os.environ,
        "NATS_URL": settings.nats_servers[0],
        "OYE_BIND_HOST": settings.bind_host,
        "OYE_OCPP_PORT": str(settings.ocpp_port),
        "OYE_METRICS_PORT": "0",
        "OYE_UPSTREAM_URL": settings.upstream_url or "",
        "OYE_UPSTREAM_CONNECT_TIMEOUT": "2",
        "OYE_UPSTREAM_BACKOFF_MAX": "0.5",
        "OYE_RELAY_ID": "relay-proc",
        "OYE_OFFLINE_ID_TAGS": TAGS,
        "OYE_DATA_DIR": str(settings.data_dir),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "oye_cli.main",
        "relay",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await process.wait()


async def connect_when_listening(url: str, cp: str) -> SimulatedCharger:
    async with asyncio.timeout(20):
        while True:
            charger = SimulatedCharger(url, cp, version="1.6")
            try:
                await charger.connect()
                return charger
            except OSError:
                await asyncio.sleep(0.05)  # the relay process is still starting


async def test_a_relay_killed_during_the_outage_loses_and_doubles_nothing(
    settings: Settings, nc: Client
) -> None:
    cp = "CP R7"
    async with CsmsServer(first_transaction_id=CSMS_FIRST_ID) as csms:
        configured = settings.model_copy(update={"upstream_url": csms.url})
        url = charger_url(f"ws://127.0.0.1:{settings.ocpp_port}/ocpp", cp)
        async with watching(nc, "oye.>") as bus:
            async with relay_process(configured) as first:
                charger = await connect_when_listening(url, cp)
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
                charger = await connect_when_listening(url, cp)
                charger.peer  # noqa: B018 - connected
                await charger.call(meter_values_of(ours, "30"))
                await charger.call(
                    call16.StopTransaction(
                        meter_stop=40, timestamp="2026-01-01T00:00:01Z", transaction_id=ours
                    )
                )
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
        started = [p for a, p in received_calls(first) if a == "TransactionEvent"]
        later = [p for a, p in received_calls(again) if a == "TransactionEvent"]
        assert [e["eventType"] for e in started + later] == ["Started", "Updated", "Ended"]
        assert [e["seqNo"] for e in started + later] == [0, 1, 2]
        assert "offline" not in started[0]  # sent live, untouched
        assert all(e["offline"] is True for e in later)
        assert {e["transactionInfo"]["transactionId"] for e in started + later} == {
            started[0]["transactionInfo"]["transactionId"]
        }
