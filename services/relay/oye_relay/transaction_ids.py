"""Transaction ids the proxy hands out when it answers a 1.6 StartTransaction itself.

They come from a range CSMSs rarely use (2,000,000,000 and up, below 2^31), so they are
easy to tell apart from the CSMS's own. Interim: the counter is seeded from the clock
(tenths of a second since 2025, modulo the range), unique across restarts in practice;
the offline-operation work moves it onto NATS so that several relays share it.
"""

from __future__ import annotations

import time

FIRST = 2_000_000_000
LAST = 2**31 - 1
_EPOCH_2025 = 1_735_689_600


class TransactionIds:
    def __init__(self, now: float | None = None) -> None:
        tenths = int(((now if now is not None else time.time()) - _EPOCH_2025) * 10)
        self._next = FIRST + tenths % (LAST - FIRST)

    def next(self) -> int:
        issued = self._next
        self._next = FIRST if issued >= LAST else issued + 1
        return issued
