"""The relay's one keepalive: dead peers on either leg are found, live ones are left alone."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
from nats.aio.client import Client
from websockets.asyncio.client import ClientConnection, connect
from websockets.frames import Frame, Opcode
from websockets.protocol import Event

from oye_shared.settings import Settings
from tests.support.raw_csms import RawCsms
from tests.support.relay import event_body, relay_running, watching

pytestmark = pytest.mark.integration

HEARTBEAT = '[2,"hb","Heartbeat",{}]'


def quick_pings(settings: Settings, csms: RawCsms) -> Settings:
    return settings.model_copy(
        update={"upstream_url": csms.url, "ping_interval": 0.2, "ping_timeout": 0.2}
    )


class PingCounter:
    """Counts the relay's pings a peer receives (websockets answers them by itself)."""

    def __init__(self, connection: ClientConnection) -> None:
        self.count = 0
        self._changed = asyncio.Event()
        process: Callable[[Event], None] = connection.process_event

        def counting(event: Event) -> None:
            if isinstance(event, Frame) and event.opcode is Opcode.PING:
                self.count += 1
                self._changed.set()
            process(event)

        connection.process_event = counting  # type: ignore[method-assign]

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(10):
            while self.count < count:
                self._changed.clear()
                await self._changed.wait()


async def test_a_charger_that_stops_answering_pings_is_closed_and_a_live_one_stays(
    settings: Settings, nc: Client
) -> None:
    """A charger that stops reading gets no pong out; the relay ends its session while
    the other charger, answering every ping, keeps its connection through many rounds."""
    async with (
        RawCsms() as csms,
        relay_running(quick_pings(settings, csms)) as relay,
        watching(nc, "oye.events.*.disconnected") as disconnected,
        connect(relay.url("DEAD"), subprotocols=["ocpp1.6"], ping_interval=None) as dead,  # type: ignore[list-item]
        connect(relay.url("LIVE"), subprotocols=["ocpp1.6"], ping_interval=None) as live,  # type: ignore[list-item]
    ):
        pings = PingCounter(live)
        dead_upstream = await csms.wait_connection("DEAD")
        live_upstream = await csms.wait_connection("LIVE")
        dead.transport.pause_reading()  # as a charger whose link went dark

        await dead_upstream.connection.wait_closed()  # the relay ended its session
        event = await disconnected.wait_for(lambda m: event_body(m)["chargePointId"] == "DEAD")
        assert event_body(event)["chargePointId"] == "DEAD"

        await pings.wait_for(pings.count + 3)  # three more rounds after that
        await live.send(HEARTBEAT)
        assert json.loads(await live.recv()) == [3, "hb", {}]
        assert len(csms.connections) == 2  # the live charger's upstream was never replaced
        assert live_upstream.connection.state.name == "OPEN"
        assert not [m for m in disconnected.messages if event_body(m)["chargePointId"] == "LIVE"]


async def test_a_csms_that_stops_answering_pings_is_dropped_and_reconnected(
    settings: Settings, nc: Client
) -> None:
    """The upstream leg's pings go unanswered: the relay drops it, says so on NATS, and
    reconnects, while the charger stays connected and its frames reach the new leg."""
    async with (
        RawCsms() as csms,
        relay_running(quick_pings(settings, csms)) as relay,
        watching(nc, "oye.events.CP.upstream_down") as down,
        connect(relay.url("CP"), subprotocols=["ocpp1.6"], ping_interval=None) as charger,  # type: ignore[list-item]
    ):
        first = await csms.wait_connection("CP")
        first.connection.transport.pause_reading()  # a CSMS that hangs

        second = await csms.wait_connection("CP", index=1)
        await down.wait_for_count(1)
        await charger.send(HEARTBEAT)
        assert json.loads(await charger.recv()) == [3, "hb", {}]
        assert await csms.wait_received(second, 1) == [HEARTBEAT]
        assert first.received == []
