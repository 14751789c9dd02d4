"""The relay's publish buffer: bounded, ordered, never in forwarding's way, loud when full."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import cast

import pytest
from nats.aio.client import Client

from oye_relay import publisher as publisher_module
from oye_relay.publisher import OVERFLOW_LOG_INTERVAL, Publisher

pytestmark = pytest.mark.unit


def fill(publisher: Publisher, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        publisher.publish(f"t.{i}", f"body-{i}".encode(), {"Seq": str(i)})


Outgoing = tuple[str, bytes, dict[str, str]]


@dataclass
class FakeNats:
    """Stands in for a nats-py client without its private command path: records what is
    published (through the public ``publish``) and flushed."""

    is_connected: bool = True
    failing_flushes: int = 0
    #: Flushes that time out while the connection stays up (a slow server).
    slow_flushes: int = 0
    #: Flushes answered only after nats-py connected again (the batch may be lost).
    reconnect_before_pong: int = 0
    published: list[Outgoing] = field(default_factory=list)
    flushed: int = 0
    flushes: int = 0
    pending_data_size: int = 0
    max_payload: int = 1024 * 1024
    stats: dict[str, int] = field(default_factory=lambda: {"reconnects": 0})

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str]) -> None:
        self.published.append((subject, payload, headers))

    async def flush(self, **options: float) -> None:
        self.flushes += 1
        if self.reconnect_before_pong:
            self.reconnect_before_pong -= 1
            self.stats["reconnects"] += 1  # the PONG comes on a new connection
            self.flushed = len(self.published)
            return
        if self.failing_flushes:
            self.failing_flushes -= 1
            raise OSError("connection reset")
        if self.slow_flushes:
            self.slow_flushes -= 1
            raise TimeoutError
        self.flushed = len(self.published)


async def drain(publisher: Publisher, fake: FakeNats) -> None:
    """Run the publisher against ``fake`` until everything queued has been confirmed."""
    runner = asyncio.create_task(publisher.run(cast(Client, fake)))
    try:
        async with asyncio.timeout(10):
            await publisher.wait_idle()
    finally:
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner


def test_publish_returns_at_once_and_never_raises_even_when_full() -> None:
    """No event loop, no NATS, ten times the capacity: every call simply returns."""
    publisher = Publisher(capacity=5)
    fill(publisher, 50)
    assert (publisher.depth, publisher.overflowed) == (5, 45)


def test_messages_beyond_the_capacity_are_refused_and_counted() -> None:
    """The buffer keeps the first ``capacity`` messages; each later one is an overflow."""
    publisher = Publisher(capacity=3)
    fill(publisher, 3)
    assert (publisher.depth, publisher.overflowed) == (3, 0)
    fill(publisher, 4, start=3)
    assert (publisher.depth, publisher.overflowed) == (3, 4)
    assert publisher.published == 0


def test_an_overflow_is_logged_at_error_once_per_interval(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A full buffer logs one ERROR line with the running count, then stays quiet for a while."""
    now = [1000.0]
    monkeypatch.setattr(publisher_module, "time", SimpleNamespace(monotonic=lambda: now[0]))
    publisher = Publisher(capacity=2)
    fill(publisher, 2)
    with caplog.at_level(logging.DEBUG, logger="oye_relay.publisher"):
        fill(publisher, 3, start=2)
        now[0] += OVERFLOW_LOG_INTERVAL - 0.1
        fill(publisher, 1, start=5)
        now[0] += 0.1
        fill(publisher, 2, start=6)
    records = [r for r in caplog.records if r.name == "oye_relay.publisher"]
    assert [r.levelno for r in records] == [logging.ERROR, logging.ERROR]
    assert "2 messages" in records[0].getMessage()
    assert "1 messages not published" in records[0].getMessage()
    assert "5 messages not published" in records[1].getMessage()
    assert publisher.overflowed == 6


async def test_the_first_capacity_messages_go_out_in_their_order_with_their_headers() -> None:
    """What the buffer kept is published as queued, subject, body and headers, then confirmed."""
    publisher = Publisher(capacity=4)
    fill(publisher, 6)
    fake = FakeNats()
    await drain(publisher, fake)
    assert fake.published == [(f"t.{i}", f"body-{i}".encode(), {"Seq": str(i)}) for i in range(4)]
    assert fake.flushed == 4
    assert (publisher.depth, publisher.published, publisher.overflowed) == (0, 4, 2)


async def test_a_batch_whose_flush_failed_is_sent_again_in_order() -> None:
    """The connection failed before the confirmation: no drop, the same messages go out
    again, still in order."""
    publisher = Publisher(capacity=10)
    fill(publisher, 3)
    fake = FakeNats(failing_flushes=1)
    await drain(publisher, fake)
    subjects = [subject for subject, _, _ in fake.published]
    assert subjects == ["t.0", "t.1", "t.2"] * 2
    assert (publisher.depth, publisher.published) == (0, 3)


async def test_a_batch_confirmed_on_a_new_connection_is_sent_again() -> None:
    """The connection the batch went out on was lost before its PONG: the PONG of the
    next connection proves nothing about it, so it goes out again."""
    publisher = Publisher(capacity=10)
    fill(publisher, 2)
    fake = FakeNats(reconnect_before_pong=1)
    await drain(publisher, fake)
    assert [subject for subject, _, _ in fake.published] == ["t.0", "t.1"] * 2
    assert publisher.published == 2


async def test_a_batch_slow_to_be_confirmed_is_waited_for_not_sent_again() -> None:
    """A flush that times out while the connection stays up: NATS has the batch, so
    the publisher asks again rather than publishing it twice."""
    publisher = Publisher(capacity=10)
    fill(publisher, 3)
    fake = FakeNats(slow_flushes=2)
    await drain(publisher, fake)
    assert [subject for subject, _, _ in fake.published] == ["t.0", "t.1", "t.2"]
    assert (fake.flushes, publisher.stalls, publisher.published) == (3, 2, 3)


async def test_a_freed_buffer_accepts_messages_again() -> None:
    """After the buffer drained, publishing works again and keeps counting overflows apart."""
    publisher = Publisher(capacity=2)
    fill(publisher, 3)
    fake = FakeNats()
    await drain(publisher, fake)
    fill(publisher, 2, start=10)
    await drain(publisher, fake)
    assert [subject for subject, _, _ in fake.published] == ["t.0", "t.1", "t.10", "t.11"]
    assert publisher.overflowed == 1


async def test_a_message_nats_would_refuse_as_too_large_is_dropped_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Over the server's max_payload (which would cost the connection): logged, counted,
    skipped; the messages around it go out in order."""
    publisher = Publisher(capacity=10)
    fill(publisher, 2)
    publisher.publish("t.big", b"x" * 2000, {"Seq": "big"})
    fill(publisher, 2, start=2)
    fake = FakeNats(max_payload=1000)
    with caplog.at_level(logging.ERROR, logger="oye_relay.publisher"):
        await drain(publisher, fake)
    assert [subject for subject, _, _ in fake.published] == ["t.0", "t.1", "t.2", "t.3"]
    assert (publisher.published, publisher.too_large, publisher.overflowed) == (4, 1, 0)
    assert "exceeds NATS's max_payload of 1000 bytes" in caplog.text


@dataclass
class RawNats(FakeNats):
    """A client with nats-py's private command path: commands land in ``written``."""

    is_closed: bool = False
    is_draining_pubs: bool = False
    commands: list[bytes] = field(default_factory=list)
    writes: list[bytes] = field(default_factory=list)
    pings: int = 0

    async def _send_command(self, command: bytes) -> None:
        self.commands.append(command)
        self.pending_data_size += len(command)

    async def _flush_pending(self) -> None:
        asyncio.get_running_loop().call_soon(self._flusher)

    def _flusher(self) -> None:
        self.writes.extend(self.commands)
        self.commands.clear()
        self.pending_data_size = 0

    async def flush(self, **options: float) -> None:
        assert self.pending_data_size == 0, "PING before the batch was written"
        self.pings += 1
        await super().flush(**options)


async def test_a_batch_goes_to_the_client_as_one_command_before_its_ping() -> None:
    """With nats-py's command path the batch is queued in one piece, and flush() (the PING)
    waits until the client's flusher wrote it."""
    publisher = Publisher(capacity=10)
    fill(publisher, 3)
    fake = RawNats()
    await drain(publisher, fake)
    assert fake.published == []
    assert (len(fake.writes), fake.pings) == (1, 1)
    assert fake.writes[0].count(b"HPUB t.") == 3
    assert (
        fake.writes[0].index(b"t.0") < fake.writes[0].index(b"t.1") < fake.writes[0].index(b"t.2")
    )
    assert (publisher.depth, publisher.published) == (0, 3)


@dataclass
class DroppingNats(RawNats):
    """The connection drops before the flusher could write the first batch; nats-py keeps
    its pending commands and writes them once reconnected."""

    drops: int = 1

    async def _flush_pending(self) -> None:
        if self.drops:
            self.drops -= 1
            self.is_connected = False
            asyncio.get_running_loop().call_later(0.05, self._reconnect)
            return
        await super()._flush_pending()

    def _reconnect(self) -> None:
        self.is_connected = True
        self._flusher()


async def test_a_batch_caught_in_a_reconnect_is_sent_again_not_confirmed_early() -> None:
    """No PING while the batch waits in the client: the publisher retries after the
    reconnect, so the batch is written twice (JetStream keeps one) and confirmed once."""
    publisher = Publisher(capacity=10)
    fill(publisher, 2)
    fake = DroppingNats()
    await drain(publisher, fake)
    sent = b"".join(fake.writes)
    assert sent.count(b"HPUB t.0 ") == 2
    assert sent.count(b"HPUB t.1 ") == 2
    assert (publisher.depth, publisher.published, fake.pings) == (0, 2, 1)
