"""A stream's last sequence, asked for once for every reader that needs it meanwhile.

A copy of a stream kept in memory (a followed KV bucket, the index of replay queues) is
exact once it has seen the stream's last sequence as of a moment after the reader began:
whatever was written before that moment, by any instance, is in it. Asking NATS for that
sequence is one round trip, shared: every reader that arrives while a question is out
waits for the next one (the one out may have been answered before the reader's moment),
so a storm of connects asks about once per round trip, not once per charger.
"""

from __future__ import annotations

import asyncio

from nats.js.client import JetStreamContext


class StreamTail:
    def __init__(self, js: JetStreamContext, stream: str) -> None:
        self.js = js
        self.stream = stream
        self._next: asyncio.Future[int] | None = None
        self._asking: asyncio.Task[None] | None = None

    async def last_sequence(self) -> int:
        """The stream's last sequence, as NATS tells it after this call began."""
        waiter = self._next
        if waiter is None:
            waiter = self._next = asyncio.get_running_loop().create_future()
            if self._asking is None:
                self._asking = asyncio.create_task(self._ask(), name=f"tail of {self.stream}")
        # Shielded: one reader cancelled must not cancel the answer the others wait for.
        return await asyncio.shield(waiter)

    async def _ask(self) -> None:
        waiter = None
        try:
            while (waiter := self._next) is not None:
                self._next = None
                try:
                    info = await self.js.stream_info(self.stream)
                except Exception as exc:  # every waiter gets it; nats-py raises many kinds
                    waiter.set_exception(exc)
                    waiter.exception()  # retrieved: all the waiters may be gone already
                else:
                    waiter.set_result(info.state.last_seq)
        finally:
            self._asking = None
            for unanswered in (waiter, self._next):  # cancelled (shutting down)
                if unanswered is not None and not unanswered.done():
                    unanswered.cancel()
            self._next = None
