"""Failed-login throttling per client address, shared by every API instance via NATS KV.

After :data:`FAILURE_LIMIT` failed logins from one address within a sliding window of
:data:`WINDOW_SECONDS`, that address gets 429 (with ``Retry-After``) until the oldest of
those failures leaves the window, whatever credentials it sends. A successful login
clears the address's record.

Each address has one KV entry (key ``kv_key(address)``) holding the times of its last
:data:`FAILURE_LIMIT` failures; writes are compare-and-set, so concurrent failures on
several instances are all counted. The bucket's TTL equals the window, so records of
addresses that went quiet vanish by themselves. Times are wall-clock seconds because
instances on different hosts must compare them; a skewed clock only shifts the window.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence

from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from oye_api.kv import get_entry
from oye_shared.kv_mirror import BucketMirror
from oye_shared.subjects import kv_key

FAILURE_LIMIT = 5
WINDOW_SECONDS = 60.0
_MAX_WRITE_ATTEMPTS = 20


def recent(failures: Sequence[float], now: float, window: float) -> list[float]:
    """The failure times still inside the window ending at ``now``, oldest first."""
    return sorted(moment for moment in failures if moment > now - window)


def retry_after(failures: Sequence[float], now: float, *, limit: int, window: float) -> int | None:
    """Whole seconds until the address may try again, or None if it is not throttled."""
    inside = recent(failures, now, window)
    if len(inside) < limit:
        return None
    # The attempt is allowed again once only limit - 1 failures remain in the window.
    frees_at = inside[-limit] + window
    return max(1, math.ceil(frees_at - now))


def _decode(value: bytes | None) -> list[float]:
    try:
        data = json.loads(value or b"{}")
        return [float(moment) for moment in data.get("failures", [])]
    except (ValueError, TypeError, AttributeError):
        return []  # an unreadable record is treated as no record


class LoginThrottle:
    def __init__(
        self,
        kv: KeyValue,
        *,
        limit: int = FAILURE_LIMIT,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._kv = kv
        # Every request checks its address: from memory (run follow()), not a round trip.
        self._mirror = BucketMirror(kv, "login failures")
        self.limit = limit
        self.window = window
        self._clock = clock

    async def follow(self) -> None:
        """Keep the failures in memory until cancelled (reads go to KV until loaded)."""
        await self._mirror.follow()

    async def failures(self, address: str) -> list[float]:
        """The recent failure times of an address."""
        entry = await self._mirror.get(kv_key(address))
        return recent(_decode(entry.value if entry else None), self._clock(), self.window)

    def retry_after(self, failures: Sequence[float]) -> int | None:
        return retry_after(failures, self._clock(), limit=self.limit, window=self.window)

    async def record_failure(self, address: str) -> None:
        key = kv_key(address)
        for _ in range(_MAX_WRITE_ATTEMPTS):
            entry = await get_entry(self._kv, key)
            now = self._clock()
            kept = recent(_decode(entry.value if entry else None), now, self.window)
            value = json.dumps({"failures": [*kept, now][-self.limit :]}).encode()
            try:
                if entry is None or entry.revision is None:
                    revision = await self._kv.create(key, value)
                else:
                    revision = await self._kv.update(key, value, last=entry.revision)
            except KeyWrongLastSequenceError:
                continue  # another instance wrote first: read again and retry
            self._mirror.note(key, value, revision)
            return

    async def clear(self, address: str) -> None:
        key = kv_key(address)
        await self._kv.delete(key)
        # The delete's own revision is not returned; any later write has a higher one.
        self._mirror.note(key, None, self._mirror.revision(key) + 1)
