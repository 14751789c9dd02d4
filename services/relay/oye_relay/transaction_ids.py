"""Transaction ids the proxy hands out when it answers a 1.6 StartTransaction itself.

They come from a range CSMSs rarely use (2,000,000,000 up to 2^31 - 1) and are unique
across restarts and relays: each relay reserves blocks of ids from a counter in NATS KV
with compare-and-set, so no two relays, and no restarted relay, hand out the same id.
While NATS cannot be reached and the block is used up, ids fall back to a clock-seeded
counter in the same range (logged).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from nats.errors import Error as NatsError
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from oye_shared.bus import cancellation_checkpoint
from oye_shared.kv import get_entry

log = logging.getLogger(__name__)

FIRST = 2_000_000_000
LAST = 2**31 - 1
BLOCK = 100
COUNTER_KEY = "offline-transaction-id"
_EPOCH_2025 = 1_735_689_600


class TransactionIds:
    def __init__(self, *, block: int = BLOCK) -> None:
        self.block = block
        self._blocks: deque[range] = deque()
        self._low = asyncio.Event()
        self._low.set()
        self._fallback = FIRST + int((time.time() - _EPOCH_2025) * 10) % (LAST - FIRST)

    @property
    def reserved(self) -> int:
        return sum(len(block) for block in self._blocks)

    def next(self) -> int:
        while self._blocks and not self._blocks[0]:
            self._blocks.popleft()
        if self.reserved <= self.block // 4:
            self._low.set()
        if self._blocks:
            block = self._blocks[0]
            self._blocks[0] = block[1:]
            return block[0]
        log.warning("no transaction id reserved on NATS; using a clock-seeded one")
        issued = self._fallback
        self._fallback = FIRST if issued >= LAST else issued + 1
        return issued

    async def keep_reserved(self, kv: KeyValue) -> None:
        """Reserve a new block whenever the reserve runs low (until cancelled)."""
        while True:
            cancellation_checkpoint()
            await self._low.wait()
            self._low.clear()
            try:
                start = await self._reserve(kv)
            except (NatsError, OSError, TimeoutError) as exc:
                log.warning("could not reserve transaction ids on NATS: %s", exc)
                continue
            self._blocks.append(range(start, start + self.block))

    async def _reserve(self, kv: KeyValue) -> int:
        while True:
            entry = await get_entry(kv, COUNTER_KEY)
            start = int(entry.value) if entry is not None and entry.value else FIRST
            if start + self.block > LAST:
                start = FIRST
            value = str(start + self.block).encode()
            try:
                if entry is None:
                    await kv.create(COUNTER_KEY, value)
                else:
                    await kv.update(COUNTER_KEY, value, last=entry.revision)
            except KeyWrongLastSequenceError:
                continue  # another relay reserved a block meanwhile
            return start
