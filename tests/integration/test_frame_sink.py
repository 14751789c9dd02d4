"""oye_relay.frame_sink: whole messages handed over as they are read, as recv() gave them."""

from __future__ import annotations

import asyncio
import gc
import socket
import sys
import tracemalloc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.messages import MAX_FRAGMENTS
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK
from websockets.frames import Frame, Opcode
from websockets.typing import Data

from oye_relay.frame_sink import RelayClientConnection, RelayServerConnection
from tests.support.links import linked

pytestmark = pytest.mark.integration


@asynccontextmanager
async def sink_linked(
    **options: Any,
) -> AsyncIterator[tuple[RelayServerConnection, ClientConnection, list[Data]]]:
    """A relay-side connection, its peer, and what the relay side's sink received."""
    async with linked(RelayServerConnection, **options) as (server, client):
        assert isinstance(server, RelayServerConnection)
        yield server, client, []


async def round_trip(client: ClientConnection) -> None:
    """Once the pong is back, the other side has handled every frame sent before."""
    await (await client.ping())


async def test_messages_reach_the_sink_in_order_text_as_text_and_bytes_as_bytes() -> None:
    """Those that came before the sink was attached go first."""
    async with sink_linked() as (server, client, received):
        await client.send("early")
        await client.send(b"\x00early")
        await round_trip(client)  # now in the queue recv() would have read
        server.attach(received.append)
        await client.send('[2,"1","Heartbeat",{}]')
        await client.send(b"\x00\x01")
        await client.send("é")
        await round_trip(client)
        assert received == ["early", b"\x00early", '[2,"1","Heartbeat",{}]', b"\x00\x01", "é"]
        assert [type(message) for message in received] == [str, bytes, str, bytes, str]


async def test_a_fragmented_message_arrives_whole_with_pings_between_its_fragments() -> None:
    async with sink_linked() as (server, client, received):
        server.attach(received.append)

        async def fragments() -> AsyncIterator[bytes]:
            yield "é".encode()[:1]  # a character split across two fragments
            await client.ping()  # a control frame in the middle of the message
            yield "é".encode()[1:] + b"t"
            yield b"e"

        await client.send(fragments(), text=True)
        await client.send([b"\x01", b"\x02", b"\x03"])
        await client.send("after")
        await round_trip(client)
        assert received == ["éte", b"\x01\x02\x03", "after"]


async def test_a_message_begun_before_the_sink_is_attached_is_finished_after() -> None:
    async with sink_linked() as (server, client, received):
        attached = asyncio.Event()

        async def fragments() -> AsyncIterator[str]:
            yield "begun "
            await round_trip(client)  # the first fragment waits in recv()'s queue
            attached.set()
            yield "before, "
            yield "ended after"

        sending_task = asyncio.create_task(client.send(fragments()))
        await attached.wait()
        server.attach(received.append)
        await sending_task
        await round_trip(client)
        assert received == ["begun before, ended after"]


async def test_invalid_utf8_fails_the_connection_with_1007_as_recv_would() -> None:
    async with sink_linked() as (server, client, received):
        server.attach(received.append)
        client.protocol.send_text(b"ok \xff")
        client.send_data()
        with pytest.raises(ConnectionClosedError) as closed:
            await client.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1007
        await server.wait_closed()
        assert received == []


async def test_too_many_fragments_fail_the_connection_with_1009() -> None:
    async with sink_linked() as (server, client, received):
        server.attach(received.append)
        client.protocol.send_text(b"", fin=False)
        for _ in range(MAX_FRAGMENTS):
            client.protocol.send_continuation(b"", fin=False)
        client.protocol.send_continuation(b"", fin=True)
        client.send_data()
        with pytest.raises(ConnectionClosedError) as closed:
            await client.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009
        assert received == []


async def test_max_size_counts_every_fragment_of_a_message() -> None:
    async with sink_linked(max_size=10) as (server, client, received):
        server.attach(received.append)
        await client.send("0123456789")  # exactly the limit
        client.protocol.send_text(b"012345", fin=False)
        client.protocol.send_continuation(b"6789AB", fin=True)
        client.send_data()
        with pytest.raises(ConnectionClosedError) as closed:
            await client.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009
        assert received == ["0123456789"]


async def test_a_client_connection_hands_over_messages_too() -> None:
    """The relay's upstream leg: ``connect(create_connection=RelayClientConnection)``."""

    async def csms(connection: ServerConnection) -> None:
        await connection.send('[2,"c1","Reset",{"type":"Soft"}]')
        await connection.send(["[3,", '"m1",{}]'])
        await connection.wait_closed()

    async with serve(csms, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(
            f"ws://127.0.0.1:{port}", create_connection=RelayClientConnection
        ) as upstream:
            assert isinstance(upstream, RelayClientConnection)
            received: list[Data] = []
            both = asyncio.Event()

            def sink(message: Data) -> None:
                received.append(message)
                if len(received) == 2:
                    both.set()

            upstream.attach(sink)
            await both.wait()
            assert received == ['[2,"c1","Reset",{"type":"Soft"}]', '[3,"m1",{}]']


async def test_the_writable_listener_hears_of_a_drained_buffer_and_of_a_lost_connection() -> None:
    async with sink_linked() as (server, client, _):
        drained = asyncio.Event()
        client.transport.pause_reading()
        while not server.paused:  # the kernel's buffers fill up, then the transport's
            server.write("x" * 65_536)
        server.notify_writable(drained.set)
        client.transport.resume_reading()
        await drained.wait()
        assert not server.paused

        lost = asyncio.Event()
        server.notify_writable(lost.set)
        server.transport.abort()
        await lost.wait()


async def test_recv_after_attach_has_nothing_and_ends_with_the_connection() -> None:
    """The queue recv() read from is gone once a sink takes the messages."""
    async with sink_linked() as (server, client, received):
        server.attach(received.append)
        reading = asyncio.create_task(server.recv())
        await client.send("to the sink")
        await client.close()
        with pytest.raises(ConnectionClosedOK):
            await reading
        assert received == ["to the sink"]


def masked_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """A frame as a charger writes it (any byte of it may come in a read of its own)."""
    return Frame(Opcode(opcode), payload, fin).serialize(mask=True)


async def test_frames_cut_into_reads_anywhere_arrive_whole_and_in_order() -> None:
    """Reads that end inside a header, inside a 16- or 64-bit length, inside a mask or a
    payload, and several frames in one read; a ping answered in between."""
    messages: list[Data] = ["a", "é" * 100, b"\x00" * 300, "x" * 70_000, "", "last"]
    wire = b"".join(
        masked_frame(0x1 if isinstance(m, str) else 0x2, m.encode() if isinstance(m, str) else m)
        for m in messages[:3]
    )
    wire += masked_frame(0x9, b"ping")
    wire += b"".join(masked_frame(0x1, m.encode()) for m in messages[3:] if isinstance(m, str))
    async with sink_linked() as (server, client, received):
        server.attach(received.append)
        pong = asyncio.get_running_loop().create_future()
        process_event = client.process_event

        def on_event(event: Any) -> None:
            if isinstance(event, Frame) and event.opcode is Opcode.PONG:
                pong.set_result(event.data)
            process_event(event)

        client.process_event = on_event  # type: ignore[method-assign]
        server.transport.pause_reading()  # only the reads below
        cuts = [*range(1, 700), *range(700, len(wire), 4096), len(wire)]
        for start, end in zip([0, *cuts], cuts, strict=False):
            server.data_received(wire[start:end])
        assert received == messages
        assert await pong == b"ping"
        server.transport.resume_reading()  # for the closing handshake


@pytest.mark.parametrize(
    ("wire", "code"),
    [
        (masked_frame(0x1, b"x" * 11), 1009),  # one frame over max_size
        (bytes([0x81, 0x02]) + b"hi", 1002),  # not masked
        (bytes([0xC1, 0x82, 1, 2, 3, 4, 5, 6]), 1002),  # a reserved bit
        (bytes([0x83, 0x80, 1, 2, 3, 4]), 1002),  # a reserved opcode
    ],
    ids=["too-big", "unmasked", "reserved-bit", "reserved-opcode"],
)
async def test_a_frame_websockets_refuses_fails_the_connection_as_it_did(
    wire: bytes, code: int
) -> None:
    async with sink_linked(max_size=10) as (server, client, received):
        server.attach(received.append)
        await client.send("before")
        client.transport.write(wire + masked_frame(0x1, b"after"))
        with pytest.raises(ConnectionClosedError) as closed:
            await client.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == code
        assert received == ["before"]


async def test_a_frame_cut_short_by_the_end_of_the_stream_closes_with_1006() -> None:
    async with sink_linked() as (server, client, received):
        whole = asyncio.Event()

        def sink(message: Data) -> None:
            received.append(message)
            whole.set()

        server.attach(sink)
        client.transport.write(masked_frame(0x1, b"whole") + masked_frame(0x1, b"cut short")[:6])
        await whole.wait()
        client.transport.write_eof()
        await server.wait_closed()
        assert server.close_code == 1006


@pytest.mark.parametrize("length", [0, 125, 126, 65_535, 65_536])
async def test_written_messages_reach_the_peer_from_either_side(length: int) -> None:
    """``sending.write`` frames its messages itself: masked from the relay's client side
    (websockets' server refuses unmasked ones), unmasked from its server side."""
    async with sink_linked() as (server, client, _):
        text = "é" * (length // 2) + "x" * (length % 2)
        server.write(text)
        server.write(b"\x01" * length)
        assert await client.recv() == text
        assert await client.recv() == b"\x01" * length

    async def echo(connection: ServerConnection) -> None:
        async for message in connection:
            await connection.send(message)

    async with serve(echo, "127.0.0.1", 0, max_size=None) as csms:
        port = csms.sockets[0].getsockname()[1]
        async with connect(
            f"ws://127.0.0.1:{port}", create_connection=RelayClientConnection, max_size=None
        ) as upstream:
            assert isinstance(upstream, RelayClientConnection)
            upstream.write(text)
            upstream.write(b"\x01" * length)
            assert await upstream.recv() == text
            assert await upstream.recv() == b"\x01" * length


async def test_connections_made_in_a_storm_keep_key_sharing_dicts() -> None:
    """Each leg's attributes stay in a dict sharing its class's keys (about 0.3 KiB) when
    many connections are accepted before the first one is set up: otherwise each gets a
    dict of its own (1.6 KiB), 2.6 KiB more per charger (docs/PERFORMANCE.md)."""

    class Fresh(RelayServerConnection):  # a class of its own: no instance made before
        pass

    accepted: list[RelayServerConnection] = []
    every = asyncio.Event()
    count = 150

    async def handler(connection: ServerConnection) -> None:
        assert isinstance(connection, Fresh)
        connection.attach(lambda message: None)
        accepted.append(connection)
        if len(accepted) == count:
            every.set()
        await connection.wait_closed()

    with socket.create_server(("127.0.0.1", 0), backlog=count) as listener:
        port = listener.getsockname()[1]
        # Connected before the server accepts any: one accept burst makes them all.
        waiting = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
        for sock in waiting:
            sock.setblocking(False)
        async with serve(handler, sock=listener, create_connection=Fresh, compression=None):
            clients = await asyncio.gather(
                *(
                    connect(f"ws://127.0.0.1:{port}", sock=sock, compression=None)
                    for sock in waiting
                )
            )
            await every.wait()
            sizes = {sys.getsizeof(connection.__dict__) for connection in accepted}
            for client in clients:
                await client.close()
    assert max(sizes) < 600, sizes


async def waiting_for_close(connection: RelayServerConnection, inside: asyncio.Event) -> None:
    """``wait_closed()``, saying when it is in there: ``set()`` does not yield, so this
    task waits in it before whoever awaits ``inside`` wakes up."""
    inside.set()
    await connection.wait_closed()


async def test_wait_closed_ends_with_the_connection_and_a_cancelled_waiter_ends_only_itself() -> (
    None
):
    async with sink_linked() as (server, client, received):
        server.attach(received.append)
        first_inside, second_inside = asyncio.Event(), asyncio.Event()
        first = asyncio.create_task(waiting_for_close(server, first_inside))
        second = asyncio.create_task(waiting_for_close(server, second_inside))
        await first_inside.wait()
        await second_inside.wait()
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        await client.send("still open")
        await round_trip(client)
        assert received == ["still open"]
        assert not second.done()
        await client.close()
        await second
        await server.wait_closed()  # and at once once closed


async def held_per_waited_on_connection(create_connection: type[ServerConnection]) -> float:
    """Bytes that each accepted connection holds through websockets' server code while its
    handler waits in ``wait_closed`` (everything the test's clients hold left out)."""
    count = 40
    waiting = asyncio.Event()
    accepted: list[ServerConnection] = []

    async def handler(connection: ServerConnection) -> None:
        if isinstance(connection, RelayServerConnection):
            connection.attach(lambda message: None)
        accepted.append(connection)
        if len(accepted) == count:
            waiting.set()
        await connection.wait_closed()

    server_side = [tracemalloc.Filter(True, "*/websockets/asyncio/server.py", all_frames=True)]
    async with serve(
        handler, "127.0.0.1", 0, create_connection=create_connection, compression=None
    ) as server:
        port = server.sockets[0].getsockname()[1]
        tracemalloc.start(10)
        try:
            before = tracemalloc.take_snapshot().filter_traces(server_side)
            clients = [
                await connect(f"ws://127.0.0.1:{port}", compression=None) for _ in range(count)
            ]
            # The last handler set it and went on into wait_closed() in the same step.
            await waiting.wait()
            gc.collect()
            after = tracemalloc.take_snapshot().filter_traces(server_side)
        finally:
            tracemalloc.stop()
        for client in clients:
            await client.close()
    return sum(stat.size_diff for stat in after.compare_to(before, "filename")) / count


async def test_a_waited_on_connection_holds_less_than_websockets_own() -> None:
    """websockets makes for every connection what the relay does not need: an empty deque
    (760 bytes), a logger adapter with its dict, and ``asyncio.shield``'s outer future
    and callbacks while a task waits in ``wait_closed``: about 1.5 KiB per leg, 3 KiB
    per charger (docs/PERFORMANCE.md)."""
    ours = await held_per_waited_on_connection(RelayServerConnection)
    theirs = await held_per_waited_on_connection(ServerConnection)
    assert theirs - ours > 1_200, (ours, theirs)
