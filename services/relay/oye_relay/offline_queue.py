"""The offline replay queue of one charger, and the 1.6 transaction map, on NATS.

A message is appended before the charger gets the proxy's answer, so once the charger is
answered the message is on disk in JetStream (a relay killed a moment later loses
nothing). While NATS itself is unreachable, messages wait in memory, in order, and go to
the stream before anything is replayed. A secondary backend's queue and map are the same
things under its name (``backend``), appended from its link's own task, never from the
charger's path. Layout: :mod:`oye_shared.replay`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.client import JetStreamContext
from nats.js.errors import BadRequestError, NotFoundError
from nats.js.kv import KeyValue

from oye_relay.replay_index import ReplayIndex
from oye_relay.transaction_map import TransactionMap
from oye_shared import headers as h
from oye_shared.kv import bucket_config, bucket_stream, open_bucket
from oye_shared.kv_mirror import BucketMirror
from oye_shared.replay import (
    TXMAP_BUCKET,
    Backlog,
    charger_backlog,
    replay_stream_config,
    replay_stream_name,
    txmap_key,
)
from oye_shared.stream_tail import StreamTail
from oye_shared.subjects import Subjects

log = logging.getLogger(__name__)

#: Longest wait for one NATS operation of the queue before it counts as failed.
NATS_TIMEOUT = 2.0

NatsTrouble = (NatsError, OSError, TimeoutError)


@dataclass(frozen=True, slots=True)
class QueuedCall:
    """One kept charger CALL, as it arrived."""

    text: str
    time: str | None
    #: 1.6 StartTransaction: the id the proxy answered with.
    offline_transaction_id: int | None
    seq: int = 0  # its place in the stream (0 while not stored yet)


class ReplayStore:
    """The relay's handle on every charger's queue and transaction map."""

    def __init__(self, js: JetStreamContext, prefix: str, txmap: KeyValue) -> None:
        self.js = js
        self.prefix = prefix
        self.subjects = Subjects(prefix)
        self.stream = replay_stream_name(prefix)
        self.txmap = txmap
        # Read at every connect, so followed into memory (see :meth:`follow`).
        self.txmap_mirror = BucketMirror(
            txmap, "txmap", StreamTail(js, bucket_stream(prefix, TXMAP_BUCKET))
        )
        self.index = ReplayIndex(js, self.stream, self.subjects.all_replay)

    @classmethod
    async def open(cls, nc: Client, prefix: str) -> ReplayStore:
        js = nc.jetstream()
        config = replay_stream_config(prefix)
        try:
            await js.add_stream(config)
        except BadRequestError:
            await js.update_stream(config)
        txmap = await open_bucket(js, bucket_config(prefix, TXMAP_BUCKET))
        return cls(js, prefix, txmap)

    async def follow(self) -> None:
        """Keep the transaction maps and the index of non-empty queues in memory, until
        cancelled: a connect then reads both without a NATS round trip. Until they are
        loaded, and if following fails, they are read from NATS."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.txmap_mirror.follow(), name="txmap mirror")
            group.create_task(self.index.follow(), name="replay index")

    # ``backend``: None for the primary's queue and map, else a secondary's name.

    async def backlog(self, charge_point_id: str, backend: str | None = None) -> Backlog:
        subject = self.subjects.replay(charge_point_id, backend)
        if await self.index.surely_empty(subject):
            return Backlog()
        mark = self.index.mark(subject)
        backlog = await charger_backlog(self.js, self.prefix, charge_point_id, backend)
        if not backlog.depth:
            self.index.found_empty(subject, mark)
        return backlog

    async def transaction_map(
        self, charge_point_id: str, backend: str | None = None
    ) -> TransactionMap:
        entry = await self.txmap_mirror.get(txmap_key(charge_point_id, backend))
        # A secondary's map names the charger's ids, whoever issued them (see TransactionMap).
        return TransactionMap.from_json(
            entry.value if entry is not None else None, any_charger_id=backend is not None
        )

    async def save_transaction_map(
        self, charge_point_id: str, mapping: TransactionMap, backend: str | None = None
    ) -> None:
        key, value = txmap_key(charge_point_id, backend), mapping.to_json()
        revision = await self.txmap.put(key, value)
        self.txmap_mirror.note(key, value, revision)

    async def append(
        self,
        charge_point_id: str,
        call: QueuedCall,
        headers: dict[str, str],
        backend: str | None = None,
    ) -> int:
        subject = self.subjects.replay(charge_point_id, backend)
        ack = await self.js.publish(
            subject, call.text.encode(), timeout=NATS_TIMEOUT, stream=self.stream, headers=headers
        )
        self.index.appended(subject)  # at once; the index's consumer notes it again later
        return ack.seq

    async def first(self, charge_point_id: str, backend: str | None = None) -> QueuedCall | None:
        try:
            message = await self.js.get_msg(
                self.stream,
                seq=1,
                subject=self.subjects.replay(charge_point_id, backend),
                next=True,
            )
        except NotFoundError:
            return None
        headers = message.headers or {}
        offline_id = headers.get(h.OFFLINE_TRANSACTION_ID)
        return QueuedCall(
            text=(message.data or b"").decode(),
            time=headers.get(h.TIME),
            offline_transaction_id=int(offline_id) if offline_id else None,
            seq=message.seq or 0,
        )

    async def remove(self, seq: int) -> None:
        # NotFound: removed already (by a replay that was cut off after the delete).
        with contextlib.suppress(NotFoundError):
            await self.js.delete_msg(self.stream, seq)


class ChargerQueue:
    """One charger's queue towards the primary (``backend`` None) or a secondary; counts
    what it holds so metrics and the session need no NATS."""

    def __init__(
        self,
        charge_point_id: str,
        store: Callable[[], ReplayStore | None],
        *,
        backlog: Backlog | None = None,
        subprotocol: str = "",
        backend: str | None = None,
    ) -> None:
        self.charge_point_id = charge_point_id
        self.backend = backend
        self._store = store
        self.subprotocol = subprotocol
        self.depth = backlog.depth if backlog else 0
        #: When the oldest kept message arrived (epoch seconds), if known.
        self.oldest = _epoch(backlog.oldest) if backlog else None
        #: Kept while NATS was away, oldest first (made when needed: NATS is rarely away).
        self._unsaved: deque[QueuedCall] | None = None
        self._appending = 0
        #: Set when appends end; made only for a reader that waits (the replay).
        self._settled: asyncio.Event | None = None
        #: Appends begun so far: a reader that saw an empty queue checks nothing came since.
        self.appends_begun = 0

    def found(self, backlog: Backlog) -> None:
        """What an earlier connection (or relay) left in the stream, read later than init."""
        self.depth += backlog.depth
        if backlog.oldest is not None:
            found = _epoch(backlog.oldest)
            if found is not None and (self.oldest is None or found < self.oldest):
                self.oldest = found

    @property
    def settled(self) -> bool:
        """Nothing is being appended right now."""
        return self._appending == 0

    async def wait_settled(self) -> None:
        if self._appending == 0:
            return
        if self._settled is None:
            self._settled = asyncio.Event()
        await self._settled.wait()

    @contextlib.asynccontextmanager
    async def appending(self) -> AsyncIterator[None]:
        """An append under way: a replay that finds the queue empty meanwhile waits for it
        (a caller that must learn something before appending holds this around both)."""
        self._appending += 1
        self.appends_begun += 1
        try:
            yield
        finally:
            self._appending -= 1
            if self._appending == 0 and self._settled is not None:
                self._settled.set()  # wakes whoever waits; the next waiter makes another
                self._settled = None

    async def append(self, text: str, *, action: str, offline_transaction_id: int | None) -> None:
        """Keep a CALL; returns once it is in JetStream (or held in memory if NATS is away)."""
        now = datetime.now().astimezone()
        call = QueuedCall(text, h.rfc3339(now), offline_transaction_id)
        self.depth += 1
        if self.oldest is None:
            self.oldest = now.timestamp()
        async with self.appending():
            if self._unsaved or not await self._store_one(call, action):
                if self._unsaved is None:
                    self._unsaved = deque()
                self._unsaved.append(call)
                log.warning(
                    "%r: NATS unreachable; %d message(s) kept for %s wait in memory",
                    self.charge_point_id,
                    len(self._unsaved),
                    f"backend {self.backend!r}" if self.backend else "the CSMS",
                )

    async def first(self) -> QueuedCall | None:
        """The oldest kept CALL; raises when NATS cannot be asked."""
        store = self._require_store()
        while self._unsaved:  # what waited in memory goes to the stream first, in order
            if not await self._store_one(self._unsaved[0], None):
                raise ConnectionError("NATS unreachable; the queue cannot be read")
            self._unsaved.popleft()
        async with asyncio.timeout(NATS_TIMEOUT):
            call = await store.first(self.charge_point_id, self.backend)
        if call is None:
            self.depth, self.oldest = 0, None
        return call

    async def remove(self, call: QueuedCall) -> None:
        store = self._require_store()
        async with asyncio.timeout(NATS_TIMEOUT):
            await store.remove(call.seq)
        self.depth = max(self.depth - 1, 0)
        if self.depth == 0:
            self.oldest = None

    async def save_transaction_map(self, mapping: TransactionMap) -> None:
        store = self._require_store()
        async with asyncio.timeout(NATS_TIMEOUT):
            await store.save_transaction_map(self.charge_point_id, mapping, self.backend)

    def _require_store(self) -> ReplayStore:
        store = self._store()
        if store is None:
            raise ConnectionError("not connected to NATS yet")
        return store

    async def _store_one(self, call: QueuedCall, action: str | None) -> bool:
        store = self._store()
        if store is None:
            return False
        headers = {
            h.CHARGE_POINT: self.charge_point_id,
            h.TIME: call.time or "",
            h.SUBPROTOCOL: self.subprotocol,
        }
        if action:
            headers[h.ACTION] = action
        if self.backend:
            headers[h.BACKEND] = self.backend
        if call.offline_transaction_id is not None:
            headers[h.OFFLINE_TRANSACTION_ID] = str(call.offline_transaction_id)
        try:
            await store.append(self.charge_point_id, call, headers, self.backend)
        except NatsTrouble as exc:
            log.debug("%r: could not keep a message on NATS: %r", self.charge_point_id, exc)
            return False
        return True


def _epoch(moment: str | None) -> float | None:
    try:
        return datetime.fromisoformat(moment).timestamp() if moment else None
    except ValueError:
        return None
