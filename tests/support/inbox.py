"""A leg's sink a test can await."""

from __future__ import annotations

import asyncio

from websockets.typing import Data


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
