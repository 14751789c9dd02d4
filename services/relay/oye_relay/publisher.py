"""Publishing to NATS without ever delaying forwarding.

Forwarding code calls :meth:`Publisher.publish`, which only appends to a bounded buffer.
One task drains the buffer in order: it publishes a batch, then confirms it with a
PING/PONG round trip (``flush``, twice: see :meth:`Publisher.run`) before dropping it
from the buffer. While NATS is down
the batch stays and is sent again when NATS is back; JetStream drops the copies it already
has by ``Nats-Msg-Id``. A full buffer refuses new messages: each refusal is counted and
logged, never silent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass

from nats.aio.client import Client
from nats.errors import Error as NatsError

from oye_shared.bus import cancellation_checkpoint

log = logging.getLogger(__name__)

BATCH_SIZE = 512
FLUSH_TIMEOUT = 2.0
RETRY_DELAY = 0.2
OVERFLOW_LOG_INTERVAL = 5.0


@dataclass(frozen=True, slots=True)
class Outgoing:
    subject: str
    body: bytes
    headers: dict[str, str]


class Publisher:
    """A bounded, ordered buffer in front of a NATS connection."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.published = 0
        self.overflowed = 0
        self._buffer: deque[Outgoing] = deque()
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._last_overflow_log = -OVERFLOW_LOG_INTERVAL

    def publish(self, subject: str, body: bytes, headers: dict[str, str]) -> None:
        """Queue a message; never blocks, never raises."""
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
        self._buffer.append(Outgoing(subject, body, headers))
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
            batch = [self._buffer[i] for i in range(min(BATCH_SIZE, len(self._buffer)))]
            try:
                for message in batch:
                    await nc.publish(message.subject, message.body, headers=message.headers)
                # nats-py writes PING straight to the socket but PUBs through its flusher
                # task, so the first PONG may come before the batch was even sent; the
                # second PING follows the batch, and its PONG confirms it.
                await nc.flush(timeout=FLUSH_TIMEOUT)  # type: ignore[arg-type]
                await nc.flush(timeout=FLUSH_TIMEOUT)  # type: ignore[arg-type]
            except (NatsError, OSError, TimeoutError) as exc:
                log.warning("NATS publish failed (%s); %d messages wait", exc, len(self._buffer))
                await asyncio.sleep(RETRY_DELAY)
                continue
            for _ in batch:
                self._buffer.popleft()
            self.published += len(batch)
