"""FrameSink.send: frames go out at once, yet a slow peer still holds the sender back."""

from __future__ import annotations

import asyncio

import pytest
from websockets.exceptions import ConnectionClosed

from oye_relay.frame_sink import RelayServerConnection
from tests.support.links import linked
from tests.support.relay import eventually

pytestmark = pytest.mark.integration


async def test_text_stays_text_and_bytes_stay_binary() -> None:
    async with linked(RelayServerConnection) as (server, client):
        await server.send('[2,"1","Heartbeat",{}]')
        await server.send(b"\x00\x01")
        await client.send("é")
        assert await client.recv() == '[2,"1","Heartbeat",{}]'
        assert await client.recv() == b"\x00\x01"
        assert await server.recv() == "é"


async def test_a_closed_connection_raises_connection_closed() -> None:
    """The relay relies on it to answer a CALL itself when the CSMS just went away."""
    async with linked(RelayServerConnection) as (server, client):
        await client.close()
        await server.wait_closed()
        with pytest.raises(ConnectionClosed):
            await server.send('[2,"1","Heartbeat",{}]')


async def test_a_peer_that_does_not_read_holds_the_sender_back() -> None:
    """Backpressure: the sender waits for a full buffer to drain instead of growing it."""
    message = "x" * 65_536
    count = 300  # ~20 MB: more than the kernel's loopback buffers take
    async with linked(RelayServerConnection) as (server, client):
        assert isinstance(server, RelayServerConnection)
        client.transport.pause_reading()
        sender = asyncio.create_task(_send_all(server, message, count))
        await eventually(lambda: server.transport.get_write_buffer_size() > 0)
        assert not sender.done()
        # Bounded: at most the frame written at once and the one that then waits to drain.
        assert server.transport.get_write_buffer_size() <= 2 * (len(message) + 14)
        client.transport.resume_reading()
        received = [await client.recv() for _ in range(count)]
        await sender
        assert received == [message] * count


async def _send_all(connection: RelayServerConnection, message: str, count: int) -> None:
    for _ in range(count):
        await connection.send(message)
