"""A secondary backend that is down catches up when it is back, from its own durable queue,
while the primary never notices: real nats-server, real OCPP peers on every side."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import ocpp.v16.call as call16
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from oye_cli.simulator.charger import SimulatedCharger
from oye_shared import headers as h
from oye_shared.backends import SecondaryBackend
from oye_shared.replay import charger_backlog, txmap_key
from oye_shared.settings import Settings
from tests.peers.csms import ChargerHandle, CsmsServer
from tests.support.backends import (
    PRIMARY_FIRST_TX,
    SECONDARY_FIRST_TX,
    Setup,
    calls_received,
    charger_on,
    received,
    two_backends,
)
from tests.support.relay import event_body, eventually, relay_running
from tests.support.stack import stack_running

pytestmark = pytest.mark.integration


async def secondary_goes_down(setup: Setup, cp: str) -> None:
    await setup.bus.wait_for(lambda m: m.subject == f"oye.events.{cp}.backend_up")
    await setup.secondary.stop()
    await setup.bus.wait_for(lambda m: m.subject == f"oye.events.{cp}.backend_down")


async def backlog_reaches(nc: Client, cp: str, depth: int, backend: str = "ha") -> None:
    """Wait until ``depth`` messages wait for ``backend`` on NATS (written off the charger's
    path, so shortly after the charger was answered)."""

    async def reached() -> bool:
        return (await charger_backlog(nc.jetstream(), "oye", cp, backend)).depth == depth

    await eventually(reached)


def is_replayed_for(cp: str, backend: str) -> Callable[[Msg], bool]:
    def check(m: Msg) -> bool:
        return m.subject == f"oye.events.{cp}.replayed" and event_body(m)["backend"] == backend

    return check


async def secondary_comes_back(setup: Setup, cp: str, before: ChargerHandle) -> ChargerHandle:
    """Start the secondary again; its new connection once the replay to it is over."""
    await setup.secondary.start()
    await setup.bus.wait_for(is_replayed_for(cp, "ha"), seconds=20)
    async with asyncio.timeout(5):
        return await setup.secondary.wait_for_charger(cp, newer_than=before)


def replay_frames(setup: Setup, cp: str) -> list[Msg]:
    return [m for m in setup.bus.messages if m.subject == f"oye.frames.{cp}.OFFLINE_REPLAY"]


def most_outstanding_on_the_bus(frames: list[Msg]) -> int:
    """The most replayed CALLs ever sent without their answer, as the relay published them."""
    outstanding: set[str] = set()
    most = 0
    for m in frames:
        headers = m.headers or {}
        if headers[h.MESSAGE_TYPE] == "CALL":
            outstanding.add(headers[h.MESSAGE_ID])
            most = max(most, len(outstanding))
        else:
            outstanding.discard(headers[h.MESSAGE_ID])
    return most


def payloads(handle: ChargerHandle) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f.action or "", f.payload)
        for f in handle.frames.frames
        if f.direction == "received" and f.action is not None
    ]


async def test_a_16_secondary_catches_up_in_order_one_call_at_a_time_under_its_own_ids(
    settings: Settings, nc: Client
) -> None:
    """Kept CALLs replayed one by one; its own transaction id in later frames, both ways."""
    cp = "CP-B1"
    policy = {"RemoteStopTransaction": "forward"}
    async with (
        two_backends(settings, nc, policy=policy) as setup,
        charger_on(setup, cp, "1.6") as (charger, primary, secondary),
    ):
        await secondary_goes_down(setup, cp)
        await charger.boot()
        await charger.status(1, "Preparing")
        await charger.heartbeat()  # not kept
        started = await charger.start_transaction(1, "TAG-1", meter_start=0)
        assert started.transaction_id == PRIMARY_FIRST_TX  # the primary's answer, as ever
        await charger.meter_values(1, energy_wh=400)
        await charger.meter_values(1, energy_wh=800)
        await backlog_reaches(nc, cp, 5)
        # Its own queue: the primary's, one token up, holds nothing.
        assert (await charger_backlog(nc.jetstream(), "oye", cp)).depth == 0

        again = await secondary_comes_back(setup, cp, secondary)
        assert calls_received(again) == [
            "BootNotification",
            "StatusNotification",
            "StartTransaction",
            "MeterValues",
            "MeterValues",
        ]
        assert "transactionId" not in again.calls("StartTransaction")[0]
        assert [p["transactionId"] for a, p in payloads(again) if a == "MeterValues"] == [
            SECONDARY_FIRST_TX,
            SECONDARY_FIRST_TX,
        ]
        # One at a time: each replayed CALL's answer came before the next CALL went.
        frames = replay_frames(setup, cp)
        assert len(frames) == 10
        assert most_outstanding_on_the_bus(frames) == 1
        assert {(m.headers or {}).get(h.BACKEND) for m in frames} == {"ha"}
        done = event_body(await setup.bus.wait_for(is_replayed_for(cp, "ha")))
        assert done["messages"] == 5
        assert (await charger_backlog(nc.jetstream(), "oye", cp, "ha")).depth == 0
        # The map is on NATS under the backend's name: the charger's id -> the backend's.
        txmap = await nc.jetstream().key_value("OYE_txmap")
        stored = json.loads((await txmap.get(txmap_key(cp, "ha"))).value or b"{}")
        assert stored == {str(PRIMARY_FIRST_TX): SECONDARY_FIRST_TX}

        # Live again: the charger's next frame names the charger's id, the backend sees its own.
        mark = len(again.frames.frames)
        await charger.meter_values(1, energy_wh=900)
        async with asyncio.timeout(10):
            live = await again.frames.wait_for(lambda f: f.action == "MeterValues", since=mark)
        assert live.payload["transactionId"] == SECONDARY_FIRST_TX
        # Its RemoteStopTransaction naming its own id stops the charger's transaction.
        stopped = await again.call(call16.RemoteStopTransaction(transaction_id=SECONDARY_FIRST_TX))
        assert stopped.status == "Accepted"
        assert any(
            json.loads(f)[2:] == ["RemoteStopTransaction", {"transactionId": PRIMARY_FIRST_TX}]
            for f in charger.received
        )
        stop = await received(again, "StopTransaction")
        assert stop.payload["transactionId"] == SECONDARY_FIRST_TX

        # The primary saw each of the charger's CALLs once, live, and nothing else.
        await received(primary, "StopTransaction")
        assert calls_received(primary) == [
            "BootNotification",
            "StatusNotification",
            "Heartbeat",
            "StartTransaction",
            "MeterValues",
            "MeterValues",
            "MeterValues",
            "StopTransaction",
        ]
        assert primary.calls("StopTransaction")[0]["transactionId"] == PRIMARY_FIRST_TX
        events = {
            m.subject.rsplit(".", 1)[-1] for m in setup.bus.messages if ".events." in m.subject
        }
        assert "upstream_down" not in events
        assert "replay_rejected" not in events


async def test_new_calls_wait_behind_the_replay_while_the_charger_is_answered_at_once(
    settings: Settings, nc: Client
) -> None:
    """A CALL the charger makes while its secondary catches up reaches it after the queue."""
    cp = "CP-B5"
    async with (
        two_backends(settings, nc) as setup,
        charger_on(setup, cp, "1.6") as (charger, primary, secondary),
    ):
        await charger.boot()
        await secondary_goes_down(setup, cp)
        await charger.status(1, "Preparing")
        await charger.start_transaction(1, "TAG-1", meter_start=0)
        await charger.meter_values(1, energy_wh=300)
        await backlog_reaches(nc, cp, 3)

        # The secondary fails the replayed start once: the replay waits before retrying.
        setup.secondary.failing.add("StartTransaction")
        await setup.secondary.start()
        await setup.bus.wait_for(
            lambda m: (
                m.subject == f"oye.frames.{cp}.OFFLINE_REPLAY"
                and (m.headers or {}).get(h.MESSAGE_TYPE) == "CALLERROR"
            ),
            seconds=20,
        )
        answered = await charger.status(1, "Charging")  # the primary answers, as ever
        assert answered is not None
        setup.secondary.failing.discard("StartTransaction")
        await setup.bus.wait_for(is_replayed_for(cp, "ha"), seconds=20)
        async with asyncio.timeout(5):
            again = await setup.secondary.wait_for_charger(cp, newer_than=secondary)
        async with asyncio.timeout(10):
            await again.frames.wait_for(
                lambda f: f.action == "StatusNotification" and f.payload["status"] == "Charging"
            )
        statuses = [p["status"] for a, p in payloads(again) if a == "StatusNotification"]
        assert calls_received(again) == [
            "StatusNotification",
            "StartTransaction",
            "StartTransaction",  # retried after the CALLERROR
            "MeterValues",
            "StatusNotification",
        ]
        assert statuses == ["Preparing", "Charging"]
        assert [p["status"] for a, p in payloads(primary) if a == "StatusNotification"] == [
            "Preparing",
            "Charging",
        ]


async def test_a_secondarys_queue_survives_a_relay_restart_and_nothing_is_lost_or_doubled(
    settings: Settings, nc: Client
) -> None:
    """Relay stopped during the secondary's outage; the next relay resumes its queue."""
    cp = "CP-B2"
    async with two_backends(settings, nc) as setup:
        async with charger_on(setup, cp, "1.6") as (charger, _primary, secondary):
            await charger.boot()
            await secondary_goes_down(setup, cp)
            started = await charger.start_transaction(1, "TAG-1", meter_start=10)
            await charger.meter_values(1, energy_wh=20)
            await backlog_reaches(nc, cp, 2)
            await setup.relay.shutdown()
            await charger.wait_closed()

        async with (
            relay_running(setup.settings) as relay,
            SimulatedCharger(relay.url(cp), cp, version="1.6") as charger,
        ):
            await charger.call(meter_values_of(started.transaction_id, "30"))
            await charger.call(
                call16.StopTransaction(
                    meter_stop=40,
                    timestamp="2026-01-01T00:00:01Z",
                    transaction_id=started.transaction_id,
                )
            )
            await backlog_reaches(nc, cp, 4)
            again = await secondary_comes_back(setup, cp, secondary)
            calls = payloads(again)
            assert [a for a, _ in calls] == [
                "StartTransaction",
                "MeterValues",
                "MeterValues",
                "StopTransaction",
            ]
            assert {p["transactionId"] for _, p in calls[1:]} == {SECONDARY_FIRST_TX}
            assert calls[0][1]["meterStart"] == 10
            assert calls[-1][1]["meterStop"] == 40
            assert (await charger_backlog(nc.jetstream(), "oye", cp, "ha")).depth == 0
            done = [m for m in setup.bus.messages if is_replayed_for(cp, "ha")(m)]
            assert [event_body(m)["messages"] for m in done] == [4]


async def test_201_transaction_events_reach_a_secondary_that_was_down_marked_offline(
    settings: Settings, nc: Client
) -> None:
    """TransactionEvents kept for the secondary arrive in order with ``offline: true``."""
    cp = "CP-B3"
    async with (
        two_backends(settings, nc) as setup,
        charger_on(setup, cp, "2.0.1") as (charger, primary, secondary),
    ):
        await charger.boot()
        await secondary_goes_down(setup, cp)
        await charger.transaction_event("Started", trigger_reason="Authorized", energy_wh=0)
        await charger.transaction_event(
            "Updated", trigger_reason="MeterValuePeriodic", energy_wh=700
        )
        await charger.transaction_event("Ended", trigger_reason="StopAuthorized", energy_wh=1500)
        sent = [
            json.loads(f)[3] for f in charger.sent if json.loads(f)[2:3] == ["TransactionEvent"]
        ]
        await backlog_reaches(nc, cp, 3)

        again = await secondary_comes_back(setup, cp, secondary)
        events = [p for a, p in payloads(again) if a == "TransactionEvent"]
        assert [e["eventType"] for e in events] == ["Started", "Updated", "Ended"]
        assert all(e["offline"] is True for e in events)
        for original, replayed in zip(sent, events, strict=True):
            assert replayed == {**original, "offline": True}
        # The primary had them live, as the charger sent them.
        assert [p for a, p in payloads(primary) if a == "TransactionEvent"] == sent
        frames = replay_frames(setup, cp)
        assert {(m.headers or {}).get(h.BACKEND) for m in frames} == {"ha"}
        assert sum((m.headers or {})[h.MESSAGE_TYPE] == "CALL" for m in frames) == 3


async def test_the_api_shows_a_secondarys_backlog_while_it_is_down(
    settings: Settings, nc: Client
) -> None:
    """GET /api/chargers/{id}: backends' states, and each secondary's backlog beside them."""
    cp = "CP-B4"
    async with CsmsServer() as primary, CsmsServer() as secondary:
        configured = settings.model_copy(
            update={
                "upstream_url": primary.url,
                "secondary_backends": [
                    SecondaryBackend.model_validate({"name": "ha", "url": secondary.url})
                ],
            }
        )
        async with (
            stack_running(configured) as stack,
            stack.client() as api,
            SimulatedCharger(stack.relay.url(cp), cp, version="1.6") as charger,
        ):
            await charger.boot()
            async with asyncio.timeout(10):
                handle = await secondary.wait_for_charger(cp)
            await secondary.stop()
            await charger.status(1, "Charging")
            await charger.start_transaction(1, "TAG-1", meter_start=0)
            await backlog_reaches(nc, cp, 2)

            async def shows_down() -> dict[str, Any] | None:
                detail: dict[str, Any] = (await api.get(f"/api/chargers/{cp}")).json()
                return detail if detail["backends"].get("ha") == "down" else None

            detail = await eventually(shows_down)
            assert detail["backends"]["primary"] == "up"
            assert detail["replayBacklog"] == 0  # the primary missed nothing
            ha = detail["backendBacklogs"]["ha"]
            assert ha["replayBacklog"] == 2
            assert ha["replayOldest"].endswith("Z")

            await secondary.start()
            async with asyncio.timeout(20):
                again = await secondary.wait_for_charger(cp, newer_than=handle)
                await again.frames.wait_for(
                    lambda f: f.action == "StartTransaction", direction="received"
                )

            async def caught_up() -> dict[str, Any] | None:
                detail: dict[str, Any] = (await api.get(f"/api/chargers/{cp}")).json()
                return detail if detail["backendBacklogs"]["ha"]["replayBacklog"] == 0 else None

            detail = await eventually(caught_up)
            assert detail["backendBacklogs"]["ha"]["replayOldest"] is None


def meter_values_of(transaction_id: int, wh: str) -> call16.MeterValues:
    """A MeterValues naming a transaction the (new) simulator instance does not know."""
    sample = {"timestamp": "2026-01-01T00:00:00Z", "sampled_value": [{"value": wh}]}
    return call16.MeterValues(connector_id=1, transaction_id=transaction_id, meter_value=[sample])
