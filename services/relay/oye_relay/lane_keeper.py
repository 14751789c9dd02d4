"""Moving one charger's lane on: its call answered or out of time, the next one goes.

No task of its own (a task per charger for a lane that is idle nearly always): the call
in flight has a done callback on its answer and a timer at its deadline, whichever comes
first frees the lane. A call whose deadline passed while it waited is not sent; it counts
as timed out, like one the charger did not answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from oye_relay.lane import CallLane, LaneCall


class LaneKeeper:
    __slots__ = ("_send", "_spawn", "_timed_out", "_timer", "lane")

    def __init__(
        self,
        lane: CallLane,
        *,
        send: Callable[[LaneCall], Awaitable[None]],
        timed_out: Callable[[LaneCall], None],
        spawn: Callable[[Awaitable[Any]], None],
    ) -> None:
        self.lane = lane
        self._send = send  # sends a call, and calls :meth:`sent` first
        self._timed_out = timed_out
        self._spawn = spawn
        self._timer: asyncio.TimerHandle | None = None

    def sent(self, call: LaneCall) -> None:
        """``call`` (the lane's call in flight) goes to the charger now: watch it."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_at(call.deadline, self._expired, call)
        call.answer.add_done_callback(lambda _: self._over(call))

    def stop(self) -> None:
        """The charger is gone (the session settles what is left)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self, call: LaneCall) -> None:
        self._timer = None
        if self.lane.in_flight is call and not call.answer.done():
            self._timed_out(call)
            call.settle(None)  # then _over moves the lane on

    def _over(self, call: LaneCall) -> None:
        if self.lane.in_flight is not call:
            return  # drained: the session is over
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        loop = asyncio.get_running_loop()
        while (following := self.lane.advance()) is not None:
            if loop.time() < following.deadline:
                self._spawn(self._send(following))
                return
            if not following.answer.done():
                self._timed_out(following)
                following.settle(None)
