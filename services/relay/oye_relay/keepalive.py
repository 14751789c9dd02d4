"""One keepalive for every WebSocket of the relay, instead of a task per connection.

websockets pings each connection from a task of its own: two tasks per charger (its leg
and the CSMS's), each with a sleep and a timer, about 3 KiB and a wake-up per connection
every ``ping_interval`` (docs/PERFORMANCE.md). Here one task keeps a heap of deadlines:
when a connection's ping is due it is sent at once (no ``send_context``), and a pong that
has not come ``ping_timeout`` later fails the connection with 1011, as websockets does.
A connection that closes is simply dropped when its deadline comes up.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections.abc import AsyncIterator

from websockets.frames import CloseCode
from websockets.protocol import State

from oye_relay.legs import Leg

log = logging.getLogger(__name__)

# What a deadline in the heap is for.
_PING, _PONG, _ABORT = 0, 1, 2


class Keepalive:
    """Pings the legs it watches every ``interval`` seconds; fails silent ones."""

    __slots__ = ("_deadlines", "_order", "_wake", "interval", "timeout")

    def __init__(self, *, interval: float, timeout: float) -> None:
        self.interval = interval
        self.timeout = timeout
        # (when, order, what, leg): ``order`` keeps equal times in FIFO order and spares
        # comparing legs.
        self._deadlines: list[tuple[float, int, int, Leg]] = []
        self._order = itertools.count()
        self._wake: asyncio.Event | None = None

    def watch(self, leg: Leg) -> None:
        """Keep ``leg`` alive from now on (until it closes)."""
        self._push(self._now() + self.interval, _PING, leg)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the keepalive task for the duration of the block."""
        task = asyncio.create_task(self._run(), name="keepalive")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _push(self, when: float, what: int, leg: Leg) -> None:
        deadlines = self._deadlines
        heapq.heappush(deadlines, (when, next(self._order), what, leg))
        if deadlines[0][3] is leg and self._wake is not None:
            self._wake.set()  # the task sleeps until a later deadline

    async def _run(self) -> None:
        self._wake = asyncio.Event()
        while True:
            self._tick()
            delay = self._deadlines[0][0] - self._now() if self._deadlines else None
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    def _tick(self) -> None:
        """Handle every deadline that has come."""
        deadlines = self._deadlines
        now = self._now()
        while deadlines and deadlines[0][0] <= now:
            when, _, what, leg = heapq.heappop(deadlines)
            if leg.state is State.CLOSED:
                continue
            try:
                if what == _PING:
                    self._ping(leg, now)
                elif what == _PONG:
                    self._check(leg, sent=when - self.timeout, now=now)
                else:  # _ABORT: failed a while ago and still not closed
                    leg.transport.abort()
            except Exception:  # one broken connection must not stop the others' keepalive
                log.exception("keepalive failed for a connection; it is dropped from it")

    def _ping(self, leg: Leg, now: float) -> None:
        if leg.state is not State.OPEN:
            return  # closing: the close timeout takes it from here
        leg.keepalive_ping()
        self._push(now + self.timeout, _PONG, leg)

    def _check(self, leg: Leg, *, sent: float, now: float) -> None:
        if leg.keepalive_answered():
            # Like websockets: the next ping an interval after this one was sent (so with
            # a timeout longer than the interval, pings come every ``timeout`` seconds).
            self._push(max(now, sent + self.interval), _PING, leg)
            return
        if leg.state is not State.OPEN:
            return
        log.info("no pong within %gs from %s; closing it", self.timeout, _peer(leg))
        leg.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
        # A dead peer never completes the closing handshake: another timeout, then abort.
        self._push(now + self.timeout, _ABORT, leg)


def _peer(leg: Leg) -> str:
    address = leg.transport.get_extra_info("peername")
    return f"{address[0]}:{address[1]}" if address else "a peer"
