"""A NATS KV bucket followed into memory: reads without a NATS round trip.

The API checks a user and a login-throttle record on every request; two KV reads were
two NATS round trips before each injection. A :class:`BucketMirror` loads the bucket
through one watcher and applies every change after that, so a read is a dictionary
lookup. Writes still go to KV (compare-and-set by revision); the writer notes its own
write at once (:meth:`BucketMirror.note`), so it reads it back at once, and every other
instance sees it when its watcher delivers it (milliseconds). Until the mirror is
loaded, and after its watcher ended, :meth:`BucketMirror.get` reads KV itself.

A mirror given the bucket's :class:`StreamTail` is exact: it answers from memory only
once its watcher has delivered every write made before the read began (by any instance),
else from KV. One question about the stream's tail serves every read waiting meanwhile.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nats.errors import Error as NatsError
from nats.js.kv import KeyValue

from oye_shared.bus import cancellation_checkpoint
from oye_shared.kv import get_entry
from oye_shared.stream_tail import StreamTail

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Entry:
    """A key's value (``None`` once deleted) and the revision that set it."""

    value: bytes | None
    revision: int


class BucketMirror:
    def __init__(self, kv: KeyValue, name: str, tail: StreamTail | None = None) -> None:
        self.kv = kv
        self.name = name  # for the log
        self.tail = tail
        self.loaded = False
        #: The newest revision the watcher delivered: the bucket's every write up to it.
        self.seen = 0
        self._entries: dict[str, Entry] = {}

    async def follow(self) -> None:
        """Load every key, then apply each change, until cancelled."""
        try:
            watcher = await self.kv.watchall()
            try:
                async for update in watcher:
                    cancellation_checkpoint()
                    if update is None:  # the initial values are in
                        self.loaded = True
                        continue
                    deleted = update.operation is not None  # DEL or PURGE
                    self.seen = max(self.seen, update.revision or 0)
                    self.note(update.key, None if deleted else update.value, update.revision or 0)
            finally:
                await watcher.stop()  # type: ignore[no-untyped-call]
        except (NatsError, OSError) as exc:
            log.warning("no longer following KV %s (%s); reading it directly", self.name, exc)
        finally:
            self.loaded = False  # a mirror nobody updates must not be read

    def note(self, key: str, value: bytes | None, revision: int) -> None:
        """Apply a write (ours, or one the watcher delivered), unless a newer one is known."""
        known = self._entries.get(key)
        if known is None or revision > known.revision:
            self._entries[key] = Entry(value, revision)

    def revision(self, key: str) -> int:
        """The newest revision known for ``key`` (0 if none)."""
        known = self._entries.get(key)
        return known.revision if known is not None else 0

    async def get(self, key: str) -> Entry | None:
        """The key's current value and revision; None if it is missing or deleted."""
        if self.loaded and await self._current():
            known = self._entries.get(key)
        else:
            entry = await get_entry(self.kv, key)
            known = None if entry is None else Entry(entry.value, entry.revision or 0)
        return known if known is not None and known.value is not None else None

    async def _current(self) -> bool:
        if self.tail is None:
            return True
        try:
            last = await self.tail.last_sequence()
        except (NatsError, OSError, TimeoutError):
            return False  # KV is read instead, and fails as it must
        return self.loaded and self.seen >= last
