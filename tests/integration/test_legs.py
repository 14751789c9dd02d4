"""oye_relay.legs: a leg the relay's own handshakes open speaks RFC 6455 as websockets
does, face to face with websockets' own peers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK
from websockets.frames import Frame, Opcode

from oye_relay import legs
from oye_relay.legs import MAX_FRAGMENTS, MAX_QUEUED, WebSocketLeg
from tests.support.inbox import Inbox
from tests.support.legs import client_leg, server_leg
from tests.support.relay import eventually

pytestmark = pytest.mark.integration


async def round_trip(peer: ClientConnection | ServerConnection) -> None:
    """Once the pong is back, the leg has handled every frame the peer sent before."""
    await (await peer.ping())


def masked_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """A frame as a charger writes it."""
    return Frame(Opcode(opcode), payload, fin).serialize(mask=True)


def raw_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """A short masked frame that websockets would refuse to write (a zero mask)."""
    assert len(payload) < 126
    return bytes(((0x80 if fin else 0) | opcode, 0x80 | len(payload))) + b"\0" * 4 + payload


async def test_messages_read_before_attach_come_first_text_as_text_bytes_as_bytes() -> None:
    async with server_leg() as (leg, client):
        await client.send("early")
        await client.send(b"\x00early")
        await round_trip(client)  # the leg answered the ping itself
        inbox = Inbox()
        leg.attach(inbox)
        await client.send('[2,"1","Heartbeat",{}]')
        await client.send("é")
        assert await inbox.holding(4) == ["early", b"\x00early", '[2,"1","Heartbeat",{}]', "é"]
        assert [type(message) for message in inbox.messages] == [str, bytes, str, str]


async def test_a_sink_not_attached_yet_pauses_reading_until_it_is() -> None:
    async with server_leg() as (leg, client):
        for index in range(MAX_QUEUED + 10):
            await client.send(str(index))
        await eventually(lambda: leg.transport.is_reading() is False)
        inbox = Inbox()
        leg.attach(inbox)
        assert await inbox.holding(MAX_QUEUED + 10) == [str(i) for i in range(MAX_QUEUED + 10)]
        assert leg.transport.is_reading()


async def test_a_fragmented_message_arrives_whole_with_pings_between_its_fragments() -> None:
    async with server_leg() as (leg, client):
        inbox = Inbox()
        leg.attach(inbox)

        async def fragments() -> AsyncIterator[bytes]:
            yield "é".encode()[:1]  # a character split across two fragments
            await client.ping()  # a control frame in the middle of the message
            yield "é".encode()[1:] + b"t"
            yield b"e"

        await client.send(fragments(), text=True)
        await client.send([b"\x01", b"\x02", b"\x03"])
        await client.send("after")
        assert await inbox.holding(3) == ["éte", b"\x01\x02\x03", "after"]


@pytest.mark.parametrize("length", [0, 125, 126, 65_535, 65_536])
async def test_messages_go_both_ways_on_either_side(length: int) -> None:
    """Masked from the relay's client side (websockets' server refuses unmasked frames),
    unmasked from its server side; 7-, 16- and 64-bit lengths."""
    text = "é" * (length // 2) + "x" * (length % 2)
    async with server_leg() as (leg, client):
        inbox = Inbox()
        leg.attach(inbox)
        leg.write(text)
        await leg.send(b"\x01" * length)
        assert await client.recv() == text
        assert await client.recv() == b"\x01" * length
        await client.send(text)
        assert await inbox.holding(1) == [text]
    async with client_leg() as (upstream, csms):
        inbox = Inbox()
        upstream.attach(inbox)
        upstream.write(text)
        await upstream.send(b"\x01" * length)
        assert await csms.recv() == text
        assert await csms.recv() == b"\x01" * length
        await csms.send(text)
        assert await inbox.holding(1) == [text]


async def test_closing_from_the_leg_completes_the_handshake_on_either_side() -> None:
    async with server_leg() as (leg, client):
        leg.attach(Inbox())
        await leg.close(1001, "going away")
        assert leg.close_code == 1001  # the charger's echo
        assert leg.close_received
        with pytest.raises(ConnectionClosedOK):
            await client.recv()
        assert client.close_code == 1001
        assert client.close_reason == "going away"
    async with client_leg() as (upstream, csms):
        upstream.attach(Inbox())
        await upstream.close(1000, "charger left")
        assert upstream.close_code == 1000
        await csms.wait_closed()
        assert csms.close_reason == "charger left"


async def test_a_peer_that_closes_is_answered_and_its_code_and_reason_kept() -> None:
    async with server_leg() as (leg, client):
        inbox = Inbox()
        leg.attach(inbox)
        await client.send("last")
        await client.close(4000, "bye")
        await leg.wait_closed()
        assert (leg.close_code, leg.close_reason, leg.close_received) == (4000, "bye", True)
        assert inbox.messages == ["last"]
        assert not leg.writable()
        with pytest.raises(ConnectionClosed):
            await leg.send("too late")
    async with client_leg() as (upstream, csms):
        upstream.attach(Inbox())
        await csms.close(1000, "done")
        await upstream.wait_closed()
        assert (upstream.close_code, upstream.close_reason) == (1000, "done")


async def test_a_dropped_connection_closes_with_1006() -> None:
    async with server_leg() as (leg, client):
        inbox = Inbox()
        leg.attach(inbox)
        client.transport.write(masked_frame(0x1, b"whole") + masked_frame(0x1, b"cut short")[:6])
        await inbox.holding(1)
        client.transport.abort()
        await leg.wait_closed()
        assert (leg.close_code, leg.close_reason, leg.close_received) == (1006, "", False)
        assert inbox.messages == ["whole"]


@pytest.mark.parametrize(
    ("wire", "code"),
    [
        (masked_frame(0x1, b"ok \xff"), 1007),  # invalid UTF-8
        (masked_frame(0x1, b"x" * 11), 1009),  # one frame over max_size
        (masked_frame(0x1, b"012345", fin=False) + masked_frame(0x0, b"6789AB"), 1009),
        (bytes([0x81, 0x02]) + b"hi", 1002),  # not masked
        (bytes([0xC1, 0x82, 1, 2, 3, 4, 5, 6]), 1002),  # a reserved bit
        (bytes([0x83, 0x80, 1, 2, 3, 4]), 1002),  # a reserved opcode
        (masked_frame(0x0, b"x"), 1002),  # a continuation of nothing
        (masked_frame(0x1, b"a", fin=False) + masked_frame(0x1, b"b"), 1002),  # no continuation
        (raw_frame(0x9, b"", fin=False), 1002),  # a fragmented ping
        (raw_frame(0x8, b"\x03"), 1002),  # a close frame one byte long
        (raw_frame(0x8, (999).to_bytes(2)), 1002),  # a close code nobody may send
        (raw_frame(0x8, (1000).to_bytes(2) + b"\xff"), 1007),  # a reason not UTF-8
    ],
    ids=[
        "utf8",
        "too-big",
        "fragments-too-big",
        "unmasked",
        "reserved-bit",
        "reserved-opcode",
        "lone-continuation",
        "missing-continuation",
        "fragmented-ping",
        "short-close",
        "bad-close-code",
        "bad-close-reason",
    ],
)
async def test_what_websockets_refuses_fails_the_connection_with_its_code(
    wire: bytes, code: int
) -> None:
    async with server_leg(max_size=10) as (leg, client):
        inbox = Inbox()
        leg.attach(inbox)
        await client.send("before")
        client.transport.write(wire + masked_frame(0x1, b"after"))
        with pytest.raises(ConnectionClosedError) as closed:
            await client.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == code
        await leg.wait_closed()  # a server closes the TCP connection itself
        assert inbox.messages == ["before"]


async def test_too_many_fragments_fail_the_connection_with_1009() -> None:
    async with server_leg() as (leg, client):
        inbox = Inbox()
        leg.attach(inbox)
        client.protocol.send_text(b"", fin=False)
        for _ in range(MAX_FRAGMENTS):
            client.protocol.send_continuation(b"", fin=False)
        client.protocol.send_continuation(b"", fin=True)
        client.send_data()
        with pytest.raises(ConnectionClosedError) as closed:
            await client.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009
        assert inbox.messages == []


async def test_frames_cut_into_reads_anywhere_arrive_whole_and_in_order() -> None:
    wire = (
        masked_frame(0x1, b"a" * 3)
        + masked_frame(0x9, b"ping")
        + masked_frame(0x1, b"b" * 300)
        + masked_frame(0x2, b"c" * 70_000)
        + masked_frame(0x1, b"d", fin=False)
        + masked_frame(0x0, b"e")
    )
    async with server_leg() as (leg, client):
        inbox = Inbox()
        leg.attach(inbox)
        for cut in (1, 2, 5, 9, 150, 4096):
            for start in range(0, len(wire), cut):
                leg.data_received(wire[start : start + cut])
        expected = ["aaa", "b" * 300, b"c" * 70_000, "de"]
        assert inbox.messages == expected * 6
        await client.send("still open")  # and the pings were answered in between
        await round_trip(client)
        assert inbox.messages[-1] == "still open"


async def test_the_keepalive_ping_is_answered_by_a_live_peer_only() -> None:
    async with server_leg() as (leg, client):
        leg.attach(Inbox())
        leg.keepalive_ping()
        await eventually(leg.keepalive_answered)
        client.transport.pause_reading()  # alive but silent: no pong
        leg.keepalive_ping()
        assert not leg.keepalive_answered()
        leg.fail(1011, "keepalive ping timeout")
        await leg.wait_closed()  # a server does not wait for a silent peer
        assert leg.close_code == 1006


async def test_send_waits_for_a_peer_that_does_not_read_and_the_listener_hears_of_it() -> None:
    message = "x" * 65_536
    count = 300  # ~20 MB: more than the kernel's loopback buffers take
    async with server_leg() as (leg, client):
        leg.attach(Inbox())
        client.transport.pause_reading()
        while leg.writable():
            leg.write(message)
        sent = count - 1
        sender = asyncio.create_task(_send_all(leg, message, count))
        drained = asyncio.Event()
        leg.notify_writable(drained.set)
        await eventually(lambda: leg.paused)
        assert not sender.done()
        client.transport.resume_reading()
        await drained.wait()
        received = 0
        while received < sent:
            assert await client.recv() == message
            received += 1
        await sender

        lost = asyncio.Event()
        leg.notify_writable(lost.set)
        leg.transport.abort()
        await lost.wait()


async def _send_all(leg: WebSocketLeg, message: str, count: int) -> None:
    for _ in range(count):
        await leg.send(message)


async def test_wait_closed_ends_with_the_connection_and_a_cancelled_waiter_ends_only_itself() -> (
    None
):
    async with server_leg() as (leg, client):
        inbox = Inbox()
        leg.attach(inbox)
        first = asyncio.create_task(leg.wait_closed())
        second = asyncio.create_task(leg.wait_closed())
        await client.send("still open")
        await inbox.holding(1)  # both waiters are inside wait_closed() by now
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert not second.done()
        await client.close()
        await second


@pytest.mark.parametrize("length", [10, 5_000, 200_000])
async def test_compressed_messages_go_both_ways_whole_and_fragmented(length: int) -> None:
    """permessage-deflate (websockets' default): the upstream leg uses the extension its
    handshake negotiated, its compression contexts carried from one message to the next."""
    text = ("é" * length)[:length]
    async with client_leg(compression="deflate") as (leg, peer):
        assert peer.protocol.extensions
        inbox = Inbox()
        leg.attach(inbox)
        for _ in range(2):  # the second time with the contexts the first one left
            leg.write(text)
            await leg.send(text.encode())
            assert await peer.recv() == text
            assert await peer.recv() == text.encode()
            await peer.send(text)
            await peer.send([text[: length // 2], text[length // 2 :]])  # fragmented
        assert await inbox.holding(4) == [text] * 4
        await leg.close()
        await peer.wait_closed()
        assert peer.close_code == 1000


async def test_a_compressed_message_over_max_size_once_inflated_fails_with_1009() -> None:
    async with server_leg(max_size=1_000, compression="deflate") as (leg, client):
        assert client.protocol.extensions
        inbox = Inbox()
        leg.attach(inbox)
        await client.send("small")
        await client.send("x" * 100_000)  # a few hundred bytes on the wire
        with pytest.raises(ConnectionClosedError) as closed:
            await client.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009
        await leg.wait_closed()
        assert inbox.messages == ["small"]


async def test_on_closed_is_called_once_the_connection_is_gone_or_soon_if_it_is() -> None:
    async with server_leg() as (leg, client):
        leg.attach(Inbox())
        closed = asyncio.Event()
        leg.on_closed(closed.set)
        await client.send("still open")
        await round_trip(client)
        assert not closed.is_set()
        await client.close()
        await closed.wait()
        late = asyncio.Event()
        leg.on_closed(late.set)
        await late.wait()


async def test_a_failed_connection_to_a_peer_that_reads_nothing_is_cut_after_close_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The close frame cannot even be written to a peer that stopped reading: the socket
    is aborted ``close_timeout`` later instead of waiting for its buffer forever."""
    monkeypatch.setattr(legs, "CLOSE_TIMEOUT", 0.2)
    async with server_leg() as (leg, client):
        leg.attach(Inbox())
        client.transport.pause_reading()
        while leg.writable():  # the kernel's buffers fill up, then the transport's
            leg.write("x" * 65_536)
        leg.fail(1011, "keepalive ping timeout")
        async with asyncio.timeout(10):
            await leg.wait_closed()
        assert leg.close_code == 1006  # no close frame came back
        client.transport.resume_reading()  # so the charger's end sees the socket closed
