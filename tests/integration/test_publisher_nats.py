"""The relay's publisher against a real nats-server: order, headers, and when it is idle."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterable

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import AckPolicy, ConsumerConfig

from oye_cli.nats_server import NatsServer
from oye_relay.publisher import BATCH_SIZE, Publisher
from tests.support.relay import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def sender(nats_server: NatsServer) -> AsyncIterator[Client]:
    """The publisher's own connection, apart from the test's subscriber ``nc``."""
    client = await nats.connect(nats_server.url)
    yield client
    await client.close()


async def subscribed(nc: Client, subject: str) -> Subscription:
    """Subscribe, and know the server has the subscription before anything is published.

    nats-py's flush() writes its PING ahead of commands still queued in the client (the
    SUB among them), so one PONG proves nothing; the second PING follows the SUB.
    """
    sub = await nc.subscribe(subject)
    await nc.flush()
    await nc.flush()
    return sub


def running(publisher: Publisher, nc: Client) -> asyncio.Task[None]:
    return asyncio.create_task(publisher.run(nc))


async def stop(runner: asyncio.Task[None]) -> None:
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)


async def receive(sub: Subscription, count: int) -> list[Msg]:
    return [await sub.next_msg(timeout=10) for _ in range(count)]


def triples(messages: Iterable[Msg]) -> list[tuple[str, bytes, dict[str, str] | None]]:
    return [(m.subject, m.data, m.headers) for m in messages]


async def test_queued_messages_reach_nats_in_order_with_their_headers(
    nc: Client, sender: Client
) -> None:
    """More than a batch, queued before the publisher runs: all arrive, in order, headers kept."""
    count = BATCH_SIZE + 88
    sub = await subscribed(nc, "pub.>")
    publisher = Publisher(capacity=count)
    expected = [
        (f"pub.{i % 3}", f"frame {i}".encode(), {"Seq": str(i), "Kind": "test"})
        for i in range(count)
    ]
    for subject, body, headers in expected:
        publisher.publish(subject, body, headers)
    idle = asyncio.create_task(publisher.wait_idle())
    runner = running(publisher, sender)
    try:
        async with asyncio.timeout(10):
            await idle
        assert (publisher.depth, publisher.published, publisher.overflowed) == (0, count, 0)
        received = await receive(sub, count)
    finally:
        await stop(runner)
    assert triples(received) == expected
    assert sub.pending_msgs == 0


async def test_wait_idle_covers_messages_queued_while_running(nc: Client, sender: Client) -> None:
    """A running publisher gets more work: wait_idle() waits for that too, then for the next."""
    sub = await subscribed(nc, "late.>")
    publisher = Publisher(capacity=100)
    runner = running(publisher, sender)
    received: list[Msg] = []
    try:
        for round_ in range(3):
            for i in range(10):
                publisher.publish(f"late.{round_}", str(i).encode(), {"Round": str(round_)})
            assert publisher.depth == 10
            async with asyncio.timeout(10):
                await publisher.wait_idle()
            assert publisher.depth == 0
            received += await receive(sub, 10)
    finally:
        await stop(runner)
    assert triples(received) == [
        (f"late.{r}", str(i).encode(), {"Round": str(r)}) for r in range(3) for i in range(10)
    ]
    assert publisher.published == 30


async def test_a_batch_is_confirmed_by_a_ping_sent_after_it(
    sender: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one PING whose PONG lets the publisher drop a batch goes out after the batch."""
    writes: list[bytes] = []
    transport = sender._transport
    assert transport is not None
    write, writelines = transport.write, transport.writelines

    def record(data: bytes) -> None:
        writes.append(data)
        write(data)

    def record_lines(lines: list[bytes]) -> None:
        writes.extend(lines)
        writelines(lines)

    monkeypatch.setattr(transport, "write", record)
    monkeypatch.setattr(transport, "writelines", record_lines)
    publisher = Publisher(capacity=10)
    for i in range(3):
        publisher.publish(f"order.{i}", b"x", {"Seq": str(i)})
    runner = running(publisher, sender)
    try:
        async with asyncio.timeout(10):
            await publisher.wait_idle()
    finally:
        await stop(runner)
    # The batch goes out in one write (three HPUBs), then one PING: its PONG confirms all.
    sent = b"".join(bytes(w) for w in writes)
    assert sent.count(b"HPUB order.") == 3
    assert sent.count(b"PING\r\n") == 1
    assert sent.index(b"HPUB order.2") < sent.index(b"PING\r\n")


async def test_a_nats_crash_mid_stream_loses_and_duplicates_nothing(
    nats_server: NatsServer,
) -> None:
    """nats-server is killed while batches are in flight and started again: the stream
    ends with every message once, in order (unconfirmed batches are sent again, and
    JetStream drops the copies it had by Nats-Msg-Id)."""
    count = 3000
    setup = await nats.connect(nats_server.url)
    await setup.jetstream().add_stream(name="OUT", subjects=["out.>"])
    await setup.close()
    client = await nats.connect(
        nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.05
    )
    publisher = Publisher(capacity=count)
    runner = running(publisher, client)

    async def produce() -> None:
        for i in range(count):
            publisher.publish("out.x", str(i).encode(), {"Nats-Msg-Id": f"m{i}", "Seq": str(i)})
            if i % 10 == 9:
                await asyncio.sleep(0.001)  # a steady stream, many small batches

    async def quarter_published() -> bool:
        return publisher.published >= count // 4

    try:
        producer = asyncio.create_task(produce())
        async with asyncio.timeout(30):
            await eventually(quarter_published, every=0.001)
            assert not producer.done()
            nats_server.kill()
            await eventually(lambda: not client.is_connected, every=0.005)
            await asyncio.to_thread(nats_server.start)
            await producer
            await publisher.wait_idle()
    finally:
        await stop(runner)
        await client.close()
    assert (publisher.published, publisher.overflowed) == (count, 0)
    reader = await nats.connect(nats_server.url)
    try:
        sub = await reader.jetstream().pull_subscribe(
            "out.>", stream="OUT", config=ConsumerConfig(ack_policy=AckPolicy.NONE)
        )
        got: list[Msg] = []
        while len(got) < count:
            got.extend(await sub.fetch(count - len(got), timeout=10))
        info = await reader.jetstream().stream_info("OUT")
    finally:
        await reader.close()
    assert [m.data for m in got] == [str(i).encode() for i in range(count)]
    assert info.state.messages == count


async def test_a_nats_slow_to_confirm_gets_each_message_once(
    nats_server: NatsServer, nc: Client, sender: Client
) -> None:
    """nats-server hangs (SIGSTOP) longer than the publisher waits for its PONG, then
    goes on: the batch was on the socket all along, so it is waited for, not sent again
    (a core subscriber would see it twice)."""
    sub = await subscribed(nc, "slow.>")
    publisher = Publisher(capacity=10)
    runner = running(publisher, sender)
    process = nats_server._process  # the server's own process, to hang it
    assert process is not None
    try:
        publisher.publish("slow.x", b"before", {})
        await publisher.wait_idle()
        os.kill(process.pid, signal.SIGSTOP)
        try:
            publisher.publish("slow.x", b"while hung", {})
            await eventually(lambda: publisher.stalls >= 1)
            assert sender.is_connected
        finally:
            os.kill(process.pid, signal.SIGCONT)
        await publisher.wait_idle()
    finally:
        await stop(runner)
    await nc.flush()  # the server sent us what it routed before this PONG
    assert [m.data for m in await receive(sub, 2)] == [b"before", b"while hung"]
    assert sub.pending_msgs == 0
    assert publisher.published == 2
