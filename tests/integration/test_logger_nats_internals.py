"""The nats-py internals the logger relies on, pinned against a real nats-server.

If a nats-py release changes them, these tests fail first; the logger itself falls back
to the public API (tested here too) and stays correct, only slower.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig

from oye_cli.nats_server import NatsServer
from oye_logger import nats_internals
from oye_logger.pull import Delivery, PullSubscription
from tests.support.relay import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

STREAM = "PIN"
#: The headers the subscriptions read (the last one is never sent).
HEADERS = ("Oye-N", "X", "Absent")


async def stream_with(nc: Client, count: int) -> str:
    """A stream holding ``count`` messages with headers, and an explicit-ack consumer."""
    js = nc.jetstream()
    await js.add_stream(name=STREAM, subjects=["pin.>"])
    for n in range(count):
        await js.publish(f"pin.{n}", b"body %d" % n, headers={"Oye-N": str(n), "X": "y: z"})
    await js.add_consumer(
        STREAM, ConsumerConfig(durable_name="c", ack_policy=AckPolicy.EXPLICIT, ack_wait=30)
    )
    return "c"


async def fetch_all(sub: PullSubscription, count: int) -> list[Delivery]:
    got: list[Delivery] = []
    async with asyncio.timeout(10):
        while len(got) < count:
            got += await sub.fetch(count - len(got), max_wait=1.0)
    return got


async def all_acked(nc: Client, consumer: str, count: int) -> tuple[int, int, int]:
    """The consumer's (ack pending, pending, ack floor) once its ack floor reaches
    ``count`` (or after 5 s, as they are then).

    The server takes acks in on its own time, after the PONG of a flush: there is no event
    to wait for, so this asks again.
    """
    await nc.flush()
    js = nc.jetstream()

    async def acked() -> bool:
        return int((await js.consumer_info(STREAM, consumer)).ack_floor.stream_seq) >= count

    with contextlib.suppress(TimeoutError):
        await eventually(acked, seconds=5, every=0.01)
    info = await js.consumer_info(STREAM, consumer)
    return info.num_ack_pending, info.num_pending, info.ack_floor.stream_seq


async def test_a_tapped_subscription_gets_its_messages_raw_and_others_as_before(
    nc: Client,
) -> None:
    """``_process_msg`` hands (sid, subject, reply, payload, header block) to the tap."""
    raw: list[tuple[bytes, bytes, bytes, bytes | None]] = []
    through_callback: list[Msg] = []
    other: list[Msg] = []
    tapped_seen, other_seen, callback_seen = asyncio.Event(), asyncio.Event(), asyncio.Event()

    def on_raw(messages: list[Any]) -> None:
        raw.extend(messages)
        tapped_seen.set()

    async def on_tapped(msg: Msg) -> None:
        through_callback.append(msg)
        callback_seen.set()

    async def on_other(msg: Msg) -> None:
        other.append(msg)
        other_seen.set()

    tapped = await nc.subscribe("tapped", cb=on_tapped)
    await nc.subscribe("other", cb=on_other)
    assert nats_internals.tap(nc, tapped, on_raw)

    await nc.publish("tapped", b"one", reply="inbox.1", headers={"A": "b"})
    await nc.publish("other", b"two", headers={"A": "b"})
    async with asyncio.timeout(5):
        await tapped_seen.wait()
        await other_seen.wait()

    assert raw == [(b"tapped", b"inbox.1", b"one", b"NATS/1.0\r\nA: b\r\n\r\n")]
    assert through_callback == []
    assert [(m.subject, m.data, m.headers) for m in other] == [("other", b"two", {"A": "b"})]

    nats_internals.untap(nc, tapped)
    await nc.publish("tapped", b"three")
    async with asyncio.timeout(5):
        await callback_seen.wait()
    assert through_callback[0].data == b"three"


async def test_a_batch_of_acks_in_one_write_acknowledges_every_message(nc: Client) -> None:
    """``_send_command`` takes the acks; JetStream then holds nothing unacknowledged."""
    consumer = await stream_with(nc, 50)
    sub = PullSubscription(nc, stream=STREAM, consumer=consumer, headers=HEADERS)
    await sub.start()
    assert sub.raw
    assert nats_internals.fast_parse_installed(nc)
    got = await fetch_all(sub, 50)
    assert [d.data for d in got] == [b"body %d" % n for n in range(50)]
    assert got[7].headers == ("7", "y: z", None)
    assert got[0].subject == "pin.0"
    assert got[0].reply.startswith(b"$JS.ACK.PIN.c.")

    await nats_internals.send_acks(nc, [d.reply for d in got])
    assert await all_acked(nc, consumer, 50) == (0, 0, 50)
    await sub.unsubscribe()


async def test_without_the_internals_the_public_api_does_the_same(
    nc: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A nats-py without these private names: callbacks and one publish per ack."""
    monkeypatch.setattr(nats_internals, "PROCESS_MSG", "_no_such_method")
    monkeypatch.setattr(nats_internals, "SEND_COMMAND", "_no_such_method")
    consumer = await stream_with(nc, 20)
    sub = PullSubscription(nc, stream=STREAM, consumer=consumer, headers=HEADERS)
    await sub.start()
    assert not sub.raw
    got = await fetch_all(sub, 20)
    assert got[3] == Delivery("pin.3", got[3].reply, b"body 3", ("3", "y: z", None))

    await nats_internals.send_acks(nc, [d.reply for d in got])
    assert await all_acked(nc, consumer, 20) == (0, 0, 20)
    await sub.unsubscribe()


async def test_an_empty_consumer_ends_the_request_with_a_status_and_fetch_returns_nothing(
    nc: Client,
) -> None:
    """The 404/408 status lines, read raw, end the request without an error."""
    consumer = await stream_with(nc, 0)
    sub = PullSubscription(nc, stream=STREAM, consumer=consumer, headers=HEADERS)
    await sub.start()
    assert await sub.fetch(10, max_wait=0.3) == []
    await sub.unsubscribe()


@pytest.mark.parametrize("fast", [True, False], ids=["fast parse", "router only"])
async def test_tapped_messages_of_any_size_arrive_whole_and_in_order_among_others(
    nc: Client, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch, fast: bool
) -> None:
    """Small and large messages (more than a read), tapped and not, interleaved."""
    if not fast:
        monkeypatch.setattr(nats_internals, "PARSER", "_no_such_parser")
    raw: list[tuple[bytes, bytes, bytes, bytes | None]] = []
    other: list[Msg] = []
    done = asyncio.Event()
    count = 300

    def check() -> None:
        if len(raw) == len(other) == count:
            done.set()

    def on_raw(messages: list[Any]) -> None:
        raw.extend(messages)
        check()

    async def on_other(msg: Msg) -> None:
        other.append(msg)
        check()

    tapped = await nc.subscribe("tapped", cb=on_other)  # never called while tapped
    assert nats_internals.tap(nc, tapped, on_raw)
    assert nats_internals.fast_parse_installed(nc) is fast
    await nc.subscribe("other", cb=on_other)
    sizes = [n * 997 % 70_000 for n in range(count)]
    publisher = await nats.connect(nats_server.url)
    try:
        for n, size in enumerate(sizes):
            body = bytes([n % 251]) * size
            sent = {"N": str(n)} if n % 3 else None
            await publisher.publish("tapped", body, reply=f"r.{n}", headers=sent)
            await publisher.publish("other", body[:100])
        await publisher.flush()
        async with asyncio.timeout(20):
            await done.wait()
    finally:
        await publisher.close()
    for n, (subject, reply, data, headers) in enumerate(raw):
        assert (subject, reply, data) == (b"tapped", b"r.%d" % n, bytes([n % 251]) * sizes[n])
        assert headers == (f"NATS/1.0\r\nN: {n}\r\n\r\n".encode() if n % 3 else None)
    assert [msg.data for msg in other] == [
        bytes([n % 251]) * min(100, s) for n, s in enumerate(sizes)
    ]
    assert nc.stats["in_msgs"] >= 2 * count
