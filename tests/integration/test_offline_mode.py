"""When the CSMS is unreachable: answered in its place, or (OYE_OFFLINE_MODE=close) closed."""

from __future__ import annotations

import asyncio
import json

import pytest
from nats.aio.client import Client
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from oye_shared import headers as h
from oye_shared.settings import Settings
from tests.support.raw_csms import RawCsms
from tests.support.relay import relay_running, watching

pytestmark = pytest.mark.integration


async def test_a_csms_that_goes_down_is_answered_for_and_forwarding_resumes(
    settings: Settings, nc: Client
) -> None:
    """While the CSMS is away the proxy answers (PROXY_RESPONSE); when it is back, the
    next frame goes to the CSMS again."""
    csms = await RawCsms().start()
    async with (
        relay_running(settings.model_copy(update={"upstream_url": csms.url})) as relay,
        watching(nc, "oye.>") as bus,
        connect(relay.url("CP-O"), subprotocols=["ocpp1.6"]) as charger,  # type: ignore[list-item]
    ):
        await csms.wait_connection("CP-O")
        await csms.stop()
        await bus.wait_for(lambda m: m.subject.endswith(".upstream_down"))
        await charger.send('[2,"away","Heartbeat",{}]')
        answer = json.loads(await charger.recv())
        assert answer[:2] == [3, "away"]
        assert answer[2]["currentTime"].endswith("Z")
        proxy = await bus.wait_for(lambda m: (m.headers or {}).get(h.DIRECTION) == "PROXY_RESPONSE")
        assert (proxy.headers or {})[h.ACTION] == "Heartbeat"

        await csms.start()
        await bus.wait_for(lambda m: m.subject.endswith(".upstream_up"))
        await charger.send('[2,"back","Heartbeat",{}]')
        assert json.loads(await charger.recv()) == [3, "back", {}]
        again = await csms.wait_connection("CP-O", index=1)
        assert await csms.wait_received(again, 1) == ['[2,"back","Heartbeat",{}]']
    await csms.stop()


async def test_close_mode_closes_the_charger_when_the_csms_link_is_lost(settings: Settings) -> None:
    """OYE_OFFLINE_MODE=close: the charger's socket is closed so it runs its offline logic."""
    closing = settings.model_copy(update={"offline_mode": "close"})
    csms = await RawCsms().start()
    async with (
        relay_running(closing.model_copy(update={"upstream_url": csms.url})) as relay,
        connect(relay.url("CP-X"), subprotocols=["ocpp1.6"]) as charger,  # type: ignore[list-item]
    ):
        await csms.wait_connection("CP-X")
        await csms.stop()
        with pytest.raises(ConnectionClosed) as closed:
            await charger.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1001


async def test_close_mode_refuses_chargers_while_the_csms_is_unreachable(
    settings: Settings,
) -> None:
    """OYE_OFFLINE_MODE=close: a charger that connects while the CSMS is down gets 503."""
    csms = await RawCsms().start()
    await csms.stop()  # nothing listens on its port now
    closing = settings.model_copy(update={"offline_mode": "close", "upstream_url": csms.url})
    async with relay_running(closing) as relay:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(relay.url("CP-Y"), subprotocols=["ocpp1.6"]):  # type: ignore[list-item]
                pass
    assert refused.value.response.status_code == 503


async def test_a_csms_that_never_answers_the_handshake_does_not_keep_the_charger_out(
    settings: Settings, nc: Client
) -> None:
    """The CSMS takes the TCP connection and says nothing: after OYE_UPSTREAM_CONNECT_TIMEOUT
    the charger is accepted and served by the proxy."""
    silent_connections = []

    async def say_nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent_connections.append(writer)
        await reader.read()  # until the relay gives up and closes

    server = await asyncio.start_server(say_nothing, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    patient = settings.model_copy(
        update={"upstream_url": f"ws://127.0.0.1:{port}/ocpp", "upstream_connect_timeout": 1.0}
    )
    try:
        async with (
            relay_running(patient) as relay,
            watching(nc, "oye.events.>") as events,
            connect(relay.url("CP-Z"), subprotocols=["ocpp2.0.1"], open_timeout=10) as charger,  # type: ignore[list-item]
        ):
            assert charger.subprotocol == "ocpp2.0.1"
            connected = await events.wait_for(lambda m: m.subject.endswith(".connected"))
            assert json.loads(connected.data)["upstream"] == "down"
            await charger.send('[2,"hb","Heartbeat",{}]')
            assert "currentTime" in json.loads(await charger.recv())[2]
        assert silent_connections
    finally:
        server.close()
        for writer in silent_connections:
            writer.close()
