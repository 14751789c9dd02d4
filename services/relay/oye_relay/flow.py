"""One direction of a charger's traffic: every frame handled as it arrives, in wire order.

The source connection hands each message over from its read callback
(:mod:`oye_relay.legs`). Nearly every frame needs nothing waited for: the session
handles it there and then (``now``: parse, publish, forward with a direct write), and
no task wakes up. A frame that must wait (an answer the relay sends itself, a queue on
NATS, the lane towards the charger, a peer that is closing or slow) is left unchanged by
``now``, which returns False; that frame and every later one of this direction then go
to a backlog that a task works off with the session's async logic (``later``) until it
is empty again. The order is the wire's either way.

Backpressure, as websockets' own receive queue gives it: the source is not read while
the destination's write buffer is over its high-water mark, nor while the backlog holds
more than ``high`` frames (until it is down to ``low``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from websockets.exceptions import ConnectionClosed
from websockets.typing import Data

from oye_relay.legs import Leg

log = logging.getLogger(__name__)


class Flow:
    __slots__ = (
        "_backlog",
        "_blocked",
        "_destination",
        "_full",
        "_later",
        "_now",
        "_on_error",
        "_reading_paused",
        "_source",
        "_stopped",
        "_task",
        "high",
        "low",
        "name",
    )

    def __init__(
        self,
        source: Leg,
        *,
        now: Callable[[Data], bool],
        later: Callable[[Data], Awaitable[None]],
        destination: Callable[[], Leg | None],
        on_error: Callable[[], None],
        name: str,
        high: int = 64,
        low: int = 16,
    ) -> None:
        self._source = source
        self._now = now
        self._later = later
        self._destination = destination
        self._on_error = on_error  # a handler raised: the session closes the source
        self.name = name
        self.high = high
        self.low = low
        #: Frames waiting for the task, the one it works on first; None when empty
        #: (nearly always: an empty deque would cost each flow 0.7 KiB).
        self._backlog: deque[Data] | None = None
        self._task: asyncio.Task[None] | None = None
        self._blocked = False  # the destination's write buffer is full
        self._full = False  # the backlog is over ``high``
        self._reading_paused = False
        self._stopped = False

    def start(self) -> None:
        """Take the source's messages from now on."""
        self._source.attach(self.deliver)

    def deliver(self, message: Data) -> None:
        """One message from the source (called from its read callback)."""
        if self._stopped:
            return
        backlog = self._backlog
        if backlog is None:
            try:
                if self._now(message):
                    self._watch_destination()
                    return
            except Exception:
                self._failed()
                return
            backlog = self._backlog = deque()
        backlog.append(message)
        if self._task is None:
            self._task = asyncio.create_task(self._work(backlog), name=self.name)
        if len(backlog) > self.high and not self._full:
            self._full = True
            self._update_reading()

    async def drained(self) -> None:
        """Wait until the backlog is worked off (call once the source is closed)."""
        while (task := self._task) is not None:
            await asyncio.wait([task])

    def stop(self) -> None:
        """Take no more frames; cancel the task (the session is ending)."""
        self._stopped = True
        self._backlog = None
        if self._task is not None:
            self._task.cancel()

    async def _work(self, backlog: deque[Data]) -> None:
        try:
            while backlog:
                await self._later(backlog[0])
                backlog.popleft()  # only now: while it works, later frames must queue
                if self._full and len(backlog) <= self.low:
                    self._full = False
                    self._update_reading()
                self._watch_destination()
        except ConnectionClosed:
            self._stop_quietly()  # a peer is gone; the session is ending
        except Exception:
            self._failed()
        finally:
            self._task = None
            if self._backlog is backlog:
                self._backlog = None

    def _watch_destination(self) -> None:
        destination = self._destination()
        if destination is not None and destination.paused and not self._blocked:
            self._blocked = True
            destination.notify_writable(self._unblocked)
            self._update_reading()

    def _unblocked(self) -> None:
        self._blocked = False
        self._update_reading()
        # A destination that filled up again meanwhile is caught with the next frame.

    def _update_reading(self) -> None:
        pause = self._blocked or self._full
        if pause is not self._reading_paused:
            self._reading_paused = pause
            transport = self._source.transport
            if pause:
                transport.pause_reading()
            else:
                transport.resume_reading()

    def _stop_quietly(self) -> None:
        self._stopped = True
        self._backlog = None

    def _failed(self) -> None:
        log.exception("%s failed; closing its connection", self.name)
        self._stop_quietly()
        self._on_error()
