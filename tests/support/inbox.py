"""A leg's sink a test can await, and one message each way between a leg and its peer."""

from __future__ import annotations

import asyncio

from websockets.asyncio.connection import Connection
from websockets.typing import Data

from oye_relay.legs import WebSocketLeg


class Inbox:
    """A sink that can be awaited for its n-th message."""

    def __init__(self) -> None:
        self.messages: list[Data] = []
        self._arrived = asyncio.Event()

    def __call__(self, message: Data) -> None:
        self.messages.append(message)
        self._arrived.set()

    async def holding(self, count: int) -> list[Data]:
        while len(self.messages) < count:
            self._arrived.clear()
            await self._arrived.wait()
        return self.messages


async def exchange(leg: WebSocketLeg, peer: Connection, text: str, answer: str) -> None:
    """``text`` from the peer reaches the leg's sink, ``answer`` from the leg the peer."""
    inbox = Inbox()
    leg.attach(inbox)
    await peer.send(text)
    assert await inbox.holding(1) == [text]
    leg.write(answer)
    assert await peer.recv() == answer
