"""A leg's messages for a reader that awaits between them.

A charger's two legs hand each message to a callback that never waits (flow.py). A
secondary backend's link is a task that may wait on each message (the backend's CALL
goes through the lane), so its leg's messages queue here; past :data:`MAX_QUEUED`
reading pauses until the reader catches up, as websockets' ``max_queue`` did.
"""

from __future__ import annotations

import asyncio
from collections import deque

from websockets.protocol import State
from websockets.typing import Data

from oye_relay.legs import MAX_QUEUED, Leg


class LegReader:
    """``async for message in LegReader(leg)``: every message, until the leg has closed."""

    __slots__ = ("_arrived", "_leg", "_messages", "_paused")

    def __init__(self, leg: Leg) -> None:
        self._leg = leg
        self._messages: deque[Data] = deque()
        self._arrived = asyncio.Event()
        self._paused = False
        leg.on_closed(self._arrived.set)
        leg.attach(self._take)

    def _take(self, message: Data) -> None:
        self._messages.append(message)
        self._arrived.set()
        if len(self._messages) >= MAX_QUEUED and not self._paused:
            self._paused = True
            self._leg.transport.pause_reading()

    def __aiter__(self) -> LegReader:
        return self

    async def __anext__(self) -> Data:
        messages = self._messages
        while not messages:
            if self._leg.state is State.CLOSED:
                raise StopAsyncIteration
            self._arrived.clear()
            await self._arrived.wait()
        message = messages.popleft()
        if self._paused and len(messages) <= MAX_QUEUED // 2:
            self._paused = False
            if self._leg.state is not State.CLOSED:
                self._leg.transport.resume_reading()
        return message
