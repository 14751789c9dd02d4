"""The durable JetStream pull consumer that moves the traffic stream into the store.

Two owned tasks joined by a one-slot queue: the fetcher pulls a batch and turns it into
rows while the writer commits the previous batch (one transaction, insert-or-ignore by
frame id) and only then acknowledges its messages. A crash anywhere before the ack means
redelivery after ``ack_wait``; the frame-id key makes the second copy a no-op, so every
frame is stored exactly once.

Every message is acknowledged on its own (``AckPolicy.EXPLICIT``; the batch's acks leave
in one write). One ack for the batch (``AckPolicy.ALL``) would also acknowledge what
another logger sharing the consumer has fetched but not committed yet, and lose it if
that logger died.

Several loggers bound to the same durable consumer split the stream between them. NATS
restarts surface as fetch errors: the fetcher backs off and carries on. Store failures
are retried (with a backoff, telling NATS the batch is still in progress) and the batch
is not acknowledged until it is committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import operator
import time
from collections.abc import Callable
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext

from oye_logger.metrics import LoggerMetrics
from oye_logger.nats_internals import send_acks
from oye_logger.pull import Delivery, PullError, PullSubscription
from oye_logger.rows import HEADERS, LogRow, RowMaker
from oye_logger.store import Store, StoreError

log = logging.getLogger(__name__)

#: JetStream's answers to a delivery besides the ack (an empty message): redeliver it
#: now, or not yet (restarts its ``ack_wait``).
NAK = b"-NAK"
IN_PROGRESS = b"+WPI"

Batch = tuple[list[Delivery], list[LogRow]]
_TIME_US = operator.itemgetter(LogRow._fields.index("time_us"))  # faster than by name
_REPLY = operator.itemgetter(1)


@dataclass(frozen=True, slots=True)
class ConsumerOptions:
    durable: str = "oye-logger"
    batch_size: int = 1000
    fetch_timeout: float = 1.0  # also bounds how long a stop waits for the fetch
    #: Used only when the logger creates the consumer; an existing one keeps its config.
    ack_wait: float = 60.0
    max_ack_pending: int = 20_000
    retry_delay: float = 0.2
    retry_delay_max: float = 5.0


class Progress:
    """What the consumer has committed so far; awaitable, for tests and health."""

    def __init__(self) -> None:
        self.batches = 0
        self.messages = 0  # acknowledged after commit (redeliveries included)
        self.inserted = 0  # new rows (redeliveries excluded)
        self._changed = asyncio.Condition()

    async def committed(self, messages: int, inserted: int) -> None:
        async with self._changed:
            self.batches += 1
            self.messages += messages
            self.inserted += inserted
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[Progress], bool]) -> None:
        """Wait until ``predicate(self)`` holds (bound it with ``asyncio.timeout``)."""
        async with self._changed:
            await self._changed.wait_for(lambda: predicate(self))


def consumer_config(options: ConsumerOptions) -> ConsumerConfig:
    return ConsumerConfig(
        name=options.durable,
        durable_name=options.durable,
        description="OYE logger: every frame and event into the log store",
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=options.ack_wait,
        max_deliver=-1,
        max_ack_pending=options.max_ack_pending,
    )


async def ensure_consumer(js: JetStreamContext, stream: str, options: ConsumerOptions) -> None:
    """Create the durable consumer unless it exists (its existing config is respected)."""
    try:
        await js.consumer_info(stream, options.durable)
    except nats.js.errors.NotFoundError:
        await js.add_consumer(stream, consumer_config(options))
        log.info("created durable consumer %s on stream %s", options.durable, stream)


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()


class LogConsumer:
    """Moves the traffic stream into a store until stopped (see the module docstring)."""

    def __init__(
        self,
        nc: Client,
        store: Store,
        *,
        stream: str,
        prefix: str,
        options: ConsumerOptions | None = None,
        progress: Progress | None = None,
        metrics: LoggerMetrics | None = None,
    ) -> None:
        self.nc = nc
        self.store = store
        self.stream = stream
        self.options = options or ConsumerOptions()
        self.progress = progress or Progress()
        self.metrics = metrics
        self._store_label = type(store).__name__.removesuffix("Store").lower() or "store"
        self._rows = RowMaker(prefix)
        #: Bound to the durable consumer and fetching (for readiness).
        self.consuming = False
        #: Why the last write failed, until one succeeds (for readiness).
        self.store_error: str | None = None

    async def pending(self) -> tuple[int, int]:
        """Messages the durable consumer has not delivered yet, and delivered but unacked."""
        info = await self.nc.jetstream().consumer_info(self.stream, self.options.durable)
        return info.num_pending or 0, info.num_ack_pending or 0

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; then commit and acknowledge what was fetched."""
        sub = await self._subscribe(stop)
        if sub is None:
            return
        batches: asyncio.Queue[Batch | None] = asyncio.Queue(maxsize=1)
        self.consuming = True
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._fetch_loop(sub, batches, stop), name="log-fetch")
                tasks.create_task(self._write_loop(batches, stop), name="log-write")
        finally:
            self.consuming = False
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    async def _subscribe(self, stop: asyncio.Event) -> PullSubscription | None:
        sub = PullSubscription(
            self.nc, stream=self.stream, consumer=self.options.durable, headers=HEADERS
        )
        delay = self.options.retry_delay
        while not stop.is_set():
            try:
                await self._ensure_consumer()
                await sub.start()
                return sub
            except (nats.errors.Error, OSError) as exc:
                log.warning("cannot bind consumer %s (%s); retrying", self.options.durable, exc)
            await _sleep_unless(stop, delay)
            delay = min(delay * 2, self.options.retry_delay_max)
        return None

    async def _ensure_consumer(self) -> None:
        await ensure_consumer(self.nc.jetstream(), self.stream, self.options)

    async def _fetch_loop(
        self,
        sub: PullSubscription,
        batches: asyncio.Queue[Batch | None],
        stop: asyncio.Event,
    ) -> None:
        delay = self.options.retry_delay
        try:
            while not stop.is_set():
                try:
                    msgs = await sub.fetch(
                        self.options.batch_size, max_wait=self.options.fetch_timeout
                    )
                    if not msgs:
                        continue
                except nats.errors.ConnectionClosedError:
                    log.warning("NATS connection closed; the logger stops consuming")
                    return
                except (nats.errors.Error, OSError) as exc:
                    log.warning("fetch failed (%s); retrying in %.1f s", exc, delay)
                    self._failed("fetch")
                    await _sleep_unless(stop, delay)
                    delay = min(delay * 2, self.options.retry_delay_max)
                    if isinstance(exc, PullError):
                        with contextlib.suppress(nats.errors.Error, OSError):
                            await self._ensure_consumer()  # it may have been deleted
                    continue
                delay = self.options.retry_delay
                await batches.put((msgs, self._rows.rows(msgs, self._fallback)))
            # Stopping: take in what the open pull request still delivers, commit it too.
            if msgs := await sub.drain():
                await batches.put((msgs, self._rows.rows(msgs, self._fallback)))
        finally:
            # The writer finishes what is queued, then ends.
            await batches.put(None)

    def _fallback(self, delivery: Delivery) -> tuple[str, int]:
        """A frame id and time for a message without them: stable across redeliveries,
        the message's place in the stream."""
        subject, reply, data, _ = delivery
        try:
            metadata = Msg(_client=self.nc, subject=subject, reply=reply.decode()).metadata
        except nats.errors.Error:  # not a JetStream delivery: name it by its content
            digest = hashlib.sha256(subject.encode() + b"\n" + data).hexdigest()
            return f"sha256:{digest[:32]}", int(time.time() * 1e6)
        moment = metadata.timestamp
        time_us = int(moment.timestamp() * 1e6) if moment else int(time.time() * 1e6)
        return f"{self.stream}:{metadata.sequence.stream}", time_us

    async def _write_loop(self, batches: asyncio.Queue[Batch | None], stop: asyncio.Event) -> None:
        while (batch := await batches.get()) is not None:
            msgs, rows = batch
            inserted = await self._write(msgs, rows, stop)
            if inserted is None:
                # Gave up at stop: hand the frames back at once (another logger, or the
                # next start, stores them) rather than after ack_wait.
                with contextlib.suppress(nats.errors.Error):
                    for msg in msgs:
                        await self.nc.publish(msg.reply.decode(), NAK)
                continue
            try:
                await send_acks(self.nc, list(map(_REPLY, msgs)))
            except nats.errors.Error as exc:
                # The rows are committed; a redelivery will be a no-op.
                log.debug("acks failed (%s); %d frames will come again", exc, len(msgs))
                self._failed("ack")
            await self.progress.committed(len(msgs), inserted)

    async def _write(
        self, msgs: list[Delivery], rows: list[LogRow], stop: asyncio.Event
    ) -> int | None:
        delay = self.options.retry_delay
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            try:
                inserted = await self.store.write(rows)
            except StoreError as exc:
                self.store_error = str(exc)
                self._failed("store")
                if stop.is_set():
                    log.warning("store failed at shutdown (%s); %d frames left", exc, len(rows))
                    return None
                log.warning(
                    "store failed (%s); retrying %d frames in %.1f s", exc, len(rows), delay
                )
            else:
                self.store_error = None
                if self.metrics is not None:
                    newest_us = max(map(_TIME_US, rows), default=None)
                    self.metrics.batch_written(
                        self._store_label, inserted, loop.time() - began, newest_us
                    )
                return inserted
            with contextlib.suppress(nats.errors.Error):
                for msg in msgs:
                    # Ours while the store is away.
                    await self.nc.publish(msg.reply.decode(), IN_PROGRESS)
            await _sleep_unless(stop, delay)
            delay = min(delay * 2, self.options.retry_delay_max)

    def _failed(self, stage: str) -> None:
        if self.metrics is not None:
            self.metrics.failed(stage)
