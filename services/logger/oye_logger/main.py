"""``oye logger``: settings -> store -> NATS -> consumer, queries, retention -> signal -> shutdown.

The health server (``/metrics``, ``/livez``, ``/readyz`` on ``OYE_LOGGER_METRICS_PORT``)
starts before all that and stops after it: ``/readyz`` says what the logger still waits for.

Shutdown, once ``stop`` is set, within :data:`SHUTDOWN_DEADLINE` seconds: stop fetching,
commit and acknowledge the batch in flight, stop retention after its current step, stop
answering queries, drain NATS (which flushes the last acks), close the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Awaitable
from typing import TypeVar

import nats.errors
from nats.aio.client import Client

from oye_logger.consumer import ConsumerOptions, LogConsumer, Progress
from oye_logger.header_blocks import parse_header_lines
from oye_logger.metrics import LoggerMetrics
from oye_logger.nats_internals import use_fast_header_parser
from oye_logger.query import QueryService
from oye_logger.retention import Retention, RetentionPolicy
from oye_logger.store import Store, StoreError, StoreSetupError, open_store
from oye_shared import bus
from oye_shared.health import HealthServer, HealthServerError, health_app
from oye_shared.http_guard import ConnectionLimits
from oye_shared.service import run_service
from oye_shared.settings import Settings
from oye_shared.subjects import Subjects

log = logging.getLogger(__name__)

T = TypeVar("T")

SHUTDOWN_DEADLINE = 5.0
DRAIN_TIMEOUT = 2.0
RETENTION_INTERVAL = 60.0
RETRY_DELAY_MAX = 5.0
MAX_REASON_CHARS = 200
#: The cyclic collector's thresholds for the logger process. A batch keeps some 30,000
#: objects alive for a moment; at the default first threshold (700) the collector ran
#: every ~260 frames and walked them again each time: 15-20 % of the logger's CPU.
GC_THRESHOLDS = (10_000, 50, 100)


class Readiness:
    """Why the logger cannot store traffic now, for ``/readyz`` (None: it can)."""

    def __init__(self) -> None:
        self.store: Store | None = None
        self.nc: Client | None = None
        self.consumer: LogConsumer | None = None
        self.stopping = False

    def nats_connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    def reason(self) -> str | None:
        if self.stopping:
            return "shutting down"
        if self.store is None:
            return "log store not open"
        if not self.nats_connected():
            return "NATS not connected"
        if self.consumer is None or not self.consumer.consuming:
            return "not consuming the traffic stream yet"
        if self.consumer.store_error is not None:
            return f"log store not writable: {self.consumer.store_error}"[:MAX_REASON_CHARS]
        return None


async def run(
    settings: Settings,
    *,
    stop: asyncio.Event,
    started: asyncio.Event | None = None,
    progress: Progress | None = None,
    options: ConsumerOptions | None = None,
    retention_interval: float = RETENTION_INTERVAL,
    metrics_port: asyncio.Future[int] | None = None,
) -> None:
    """Run the logger until ``stop`` is set, then shut down in order within a deadline.

    ``started`` is set once the logger consumes and answers queries; ``progress`` counts
    what it commits (pass one to await it); ``metrics_port`` learns the port of
    ``/metrics`` once it is bound (``OYE_LOGGER_METRICS_PORT`` may be 0: any free port).
    """
    readiness = Readiness()
    metrics = LoggerMetrics(nats_connected=readiness.nats_connected)

    async def refresh_lag() -> None:
        if readiness.consumer is not None and readiness.nats_connected():
            metrics.consumer_lag(*await readiness.consumer.pending())

    async with contextlib.AsyncExitStack() as resources:
        health = HealthServer(
            health_app(metrics.registry, readiness.reason, refresh=refresh_lag),
            host=settings.bind_host,
            port=settings.logger_metrics_port,
            name="logger",
            limits=ConnectionLimits.from_settings(settings),
        )
        await resources.enter_async_context(health)
        if metrics_port is not None and health.port is not None:
            metrics_port.set_result(health.port)
        store = readiness.store = await _open_store(resources, settings, stop)
        if store is None:
            return
        nc = await _until_stopped(stop, bus.connect(settings, name=f"logger-{settings.relay_id}"))
        if nc is None:
            return
        readiness.nc = nc
        use_fast_header_parser(nc, parse_header_lines)
        resources.push_async_callback(_drain, nc)
        if not await _ensure_stream(nc, settings, stop):
            return
        queries = QueryService(nc, store, subject=Subjects(settings.subject_prefix).logs_query)
        await queries.start()
        consumer = LogConsumer(
            nc,
            store,
            stream=settings.stream_name,
            prefix=settings.subject_prefix,
            options=options,
            progress=progress,
            metrics=metrics,
        )
        readiness.consumer = consumer
        retention = Retention(
            store, RetentionPolicy.from_settings(settings), interval=retention_interval
        )
        log.info(
            "logger: stream %s -> %s; answering %s",
            settings.stream_name,
            type(store).__name__,
            queries.subject,
        )
        try:
            async with asyncio.timeout(None) as deadline, asyncio.TaskGroup() as tasks:
                tasks.create_task(consumer.run(stop), name="consumer")
                tasks.create_task(retention.run(stop), name="retention")
                if started is not None:
                    started.set()
                await stop.wait()
                readiness.stopping = True
                log.info("logger shutting down")
                deadline.reschedule(asyncio.get_running_loop().time() + SHUTDOWN_DEADLINE)
        except TimeoutError:
            log.warning("logger shutdown took over %.0f s; cut short", SHUTDOWN_DEADLINE)


async def _open_store(
    resources: contextlib.AsyncExitStack, settings: Settings, stop: asyncio.Event
) -> Store | None:
    delay = 0.2
    while not stop.is_set():
        try:
            return await resources.enter_async_context(open_store(settings))
        except StoreSetupError:
            raise
        except StoreError as exc:
            log.warning("log store not available (%s); retrying in %.1f s", exc, delay)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await stop.wait()
        delay = min(delay * 2, RETRY_DELAY_MAX)
    return None


async def _ensure_stream(nc: Client, settings: Settings, stop: asyncio.Event) -> bool:
    delay = 0.2
    while not stop.is_set():
        try:
            await bus.ensure_traffic_stream(nc, settings)
            return True
        except (nats.errors.Error, OSError) as exc:
            log.warning("cannot set up stream %s (%s); retrying", settings.stream_name, exc)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await stop.wait()
        delay = min(delay * 2, RETRY_DELAY_MAX)
    return False


async def _until_stopped(stop: asyncio.Event, work: Awaitable[T]) -> T | None:
    """The result of ``work``, or None if ``stop`` is set first (``work`` is cancelled)."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return None if task.cancelled() else task.result()


async def _drain(nc: Client) -> None:
    """Flush pending acks and close; give up after a short wait if NATS is away."""
    await bus.close_connection(nc, deadline=DRAIN_TIMEOUT)


def main() -> None:
    gc.set_threshold(*GC_THRESHOLDS)
    run_service(run, fatal=(StoreSetupError, HealthServerError))


if __name__ == "__main__":
    main()
