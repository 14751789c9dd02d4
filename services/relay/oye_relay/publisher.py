"""Publishing to NATS without ever delaying forwarding.

Forwarding code calls :meth:`Publisher.publish` (or :meth:`Publisher.publish_command` with
a message already encoded by :mod:`oye_relay.wire`), which only appends to a bounded
buffer. One task drains the buffer in order: it lets a batch gather for a moment, writes
it, then confirms it with one PING/PONG round trip sent after it (see
:func:`oye_shared.bus.confirmed`) before dropping it from the
buffer. While NATS is down the batch stays and is sent again when NATS is back; JetStream
drops the copies it already has by ``Nats-Msg-Id``. A NATS that is only slow is waited
for: the batch is not sent twice. A full buffer refuses new messages:
each refusal is counted and logged, never silent. A message larger than NATS's
``max_payload`` is dropped, counted and logged too: the server would close the connection
over it, again at every retry.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque

from nats.aio.client import Client
from nats.errors import ConnectionReconnectingError
from nats.errors import Error as NatsError

from oye_relay.nats_commands import CommandWriter
from oye_relay.wire import header_block, hpub, payload_size
from oye_shared.bus import CONFIRM_TIMEOUT, cancellation_checkpoint, confirmed

log = logging.getLogger(__name__)

BATCH_SIZE = 512
#: How long a batch may gather before it is written: under light load every frame would
#: otherwise be a batch of its own, with its own write and PING/PONG round trip.
GATHER = 0.002
RETRY_DELAY = 0.2
OVERFLOW_LOG_INTERVAL = 5.0


class Publisher:
    """A bounded, ordered buffer of ``HPUB`` commands in front of a NATS connection."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.published = 0
        self.overflowed = 0
        #: Messages dropped because NATS would refuse them (over ``max_payload``).
        self.too_large = 0
        #: Times NATS took longer than CONFIRM_TIMEOUT to confirm a batch (still connected).
        self.stalls = 0
        self._buffer: deque[bytes] = deque()
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._last_overflow_log = -OVERFLOW_LOG_INTERVAL

    def publish(self, subject: str, body: bytes, headers: dict[str, str]) -> None:
        """Queue a message; never blocks, never raises (header names: oye_shared.headers)."""
        self.publish_command(hpub(subject, header_block(headers), body))

    def publish_command(self, command: bytes) -> None:
        """Queue a message encoded by :func:`oye_relay.wire.hpub`; never blocks or raises."""
        if len(self._buffer) >= self.capacity:
            self.overflowed += 1
            now = time.monotonic()
            if now - self._last_overflow_log >= OVERFLOW_LOG_INTERVAL:
                self._last_overflow_log = now
                log.error(
                    "NATS publish buffer full (%d messages): %d messages not published so far",
                    self.capacity,
                    self.overflowed,
                )
            return
        self._buffer.append(command)
        self._idle.clear()
        self._ready.set()

    @property
    def depth(self) -> int:
        return len(self._buffer)

    async def wait_idle(self) -> None:
        """Wait until everything queued so far has reached NATS."""
        await self._idle.wait()

    async def run(self, nc: Client) -> None:
        """Drain the buffer into ``nc`` until cancelled."""
        writer = CommandWriter(nc)
        while True:
            cancellation_checkpoint()
            await self._ready.wait()
            if not self._buffer:
                self._ready.clear()
                self._idle.set()
                continue
            if not nc.is_connected:
                await asyncio.sleep(RETRY_DELAY)  # nats-py offers no "reconnected" event to await
                continue
            if len(self._buffer) < BATCH_SIZE:
                await asyncio.sleep(GATHER)  # forwarding goes on meanwhile: it never waits here
            batch = self._take(nc.max_payload)
            if not batch:
                continue
            try:
                connection = _connection(nc)
                await writer.write(batch)
                await self._confirmed(nc, connection)
            except (NatsError, OSError, TimeoutError) as exc:
                log.warning("NATS publish failed (%s); %d messages wait", exc, len(self._buffer))
                await asyncio.sleep(RETRY_DELAY)
                continue
            for _ in batch:
                self._buffer.popleft()
            self.published += len(batch)

    async def _confirmed(self, nc: Client, connection: int) -> None:
        """Wait until NATS has the batch just written on the ``connection``-th connection:
        one PING, sent once the batch is on the socket, and its PONG. A NATS that is only
        slow to answer has the batch (nats-py keeps it queued, or it is on the socket): it
        is waited for, not sent again, which core subscribers would see twice. A
        connection lost meanwhile may have lost the batch with it, even once nats-py has
        connected again: then it is sent again (JetStream drops what it had)."""
        while True:
            try:
                await confirmed(nc)
            except TimeoutError:  # nats-py's FlushTimeoutError is one too
                if not nc.is_connected or _connection(nc) != connection:
                    raise
                self.stalls += 1
                log.warning(
                    "NATS has not confirmed a batch in %gs; still waiting (%d messages wait)",
                    CONFIRM_TIMEOUT,
                    len(self._buffer),
                )
                continue
            if _connection(nc) != connection:  # the PONG came on a new connection
                raise ConnectionReconnectingError
            return

    def _take(self, max_payload: int) -> list[bytes]:
        """The next batch, from the head of the buffer; drops a head NATS would refuse."""
        batch = list(itertools.islice(self._buffer, BATCH_SIZE))
        for index, command in enumerate(batch):
            if len(command) > max_payload and payload_size(command) > max_payload:
                if index:
                    return batch[:index]  # the large one will be the head of the next batch
                self._buffer.popleft()
                self.too_large += 1
                log.error(
                    "a message of %d bytes exceeds NATS's max_payload of %d bytes; "
                    "not published (%d so far)",
                    payload_size(command),
                    max_payload,
                    self.too_large,
                )
                return []
        return batch


def _connection(nc: Client) -> int:
    """Which of the client's connections this is (nats-py counts its reconnections)."""
    return int(nc.stats["reconnects"])
