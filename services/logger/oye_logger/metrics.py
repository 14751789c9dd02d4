"""The logger's Prometheus metrics, and its ``/metrics``, ``/livez`` and ``/readyz`` server.

One registry per logger (never prometheus-client's global one: a process may run several
loggers, the tests do). :class:`LoggerMetrics` is told of each committed batch and each
failure by the consumer; the consumer's lag is asked of JetStream when Prometheus scrapes.

The HTTP server is a small Starlette app run by ``uvicorn.Server`` in the logger's own
event loop, on ``OYE_LOGGER_METRICS_PORT`` (0: any free port, :attr:`HealthServer.port`
tells which). It is the same as the relay's ``oye_relay.health_server`` (services share no
code but ``oye_shared``):

* ``GET /livez``: 200 ``{"status": "alive"}`` whenever the event loop answers at all.
* ``GET /readyz``: 200 ``{"status": "ready"}``, or 503 ``{"status": "not ready",
  "reason": ...}``.
* ``GET /metrics``: the registry in the Prometheus text format (OpenMetrics if asked for).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from types import TracebackType
from typing import Self

import uvicorn
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

log = logging.getLogger(__name__)

#: A batch commit takes from a millisecond (SQLite, a few rows) to seconds (a slow database).
WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Where the consumer can fail: fetching from JetStream, writing the store, acknowledging.
STAGES = ("fetch", "store", "ack")


class LoggerMetrics:
    """The logger's registry, and what the consumer tells it."""

    def __init__(
        self, *, nats_connected: Callable[[], bool], clock: Callable[[], float] = time.time
    ) -> None:
        self.registry = CollectorRegistry()
        self.stored = Counter(
            "oye_logger_frames_stored",
            "Frames and events newly written to the log store (redeliveries not counted).",
            ["store"],
            registry=self.registry,
        )
        self.write_seconds = Histogram(
            "oye_logger_batch_write_seconds",
            "Time to commit one batch to the log store.",
            ["store"],
            buckets=WRITE_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "oye_logger_errors",
            "Failures by stage: fetch (from JetStream), store (a write), ack (after a commit).",
            ["stage"],
            registry=self.registry,
        )
        for stage in STAGES:
            self.errors.labels(stage)
        #: The durable consumer's backlog, as JetStream last told it (None: not asked yet).
        self.pending: int | None = None
        self.ack_pending: int | None = None
        #: The newest ``Oye-Time`` stored so far, in epoch microseconds.
        self.newest_us: int | None = None
        self.registry.register(_LiveCollector(self, nats_connected, clock))
        ProcessCollector(registry=self.registry)

    def batch_written(
        self, store: str, inserted: int, seconds: float, newest_us: int | None
    ) -> None:
        self.stored.labels(store).inc(inserted)
        self.write_seconds.labels(store).observe(seconds)
        if newest_us is not None and (self.newest_us is None or newest_us > self.newest_us):
            self.newest_us = newest_us

    def failed(self, stage: str) -> None:
        self.errors.labels(stage).inc()

    def consumer_lag(self, pending: int, ack_pending: int) -> None:
        self.pending, self.ack_pending = pending, ack_pending


class _LiveCollector:
    """Renders the logger's state when Prometheus scrapes."""

    def __init__(
        self, metrics: LoggerMetrics, nats_connected: Callable[[], bool], clock: Callable[[], float]
    ) -> None:
        self._metrics = metrics
        self._nats_connected = nats_connected
        self._clock = clock

    def describe(self) -> list[Metric]:
        return list(self._families().values())

    def collect(self) -> list[Metric]:
        families = self._families()
        metrics = self._metrics
        if metrics.pending is not None:
            families["pending"].add_metric([], metrics.pending)
        if metrics.ack_pending is not None:
            families["ack_pending"].add_metric([], metrics.ack_pending)
        if metrics.newest_us is not None:
            newest = metrics.newest_us / 1e6
            families["newest"].add_metric([], newest)
            families["age"].add_metric([], max(self._clock() - newest, 0.0))
        families["nats"].add_metric([], 1 if self._nats_connected() else 0)
        return list(families.values())

    @staticmethod
    def _families() -> dict[str, GaugeMetricFamily]:
        return {
            "pending": GaugeMetricFamily(
                "oye_logger_consumer_pending_messages",
                "Messages in the traffic stream not yet delivered to the logger (its lag).",
            ),
            "ack_pending": GaugeMetricFamily(
                "oye_logger_consumer_ack_pending_messages",
                "Messages delivered to the logger and not yet committed and acknowledged.",
            ),
            "newest": GaugeMetricFamily(
                "oye_logger_newest_frame_timestamp_seconds",
                "Oye-Time of the newest frame stored, in epoch seconds.",
            ),
            "age": GaugeMetricFamily(
                "oye_logger_newest_frame_age_seconds",
                "How old the newest stored frame is (grows when traffic stops, too).",
            ),
            "nats": GaugeMetricFamily("oye_nats_connected", "1 while connected to NATS, else 0."),
        }


# The HTTP server: as oye_relay.health_server.


#: Why the service is not ready, or None when it is.
Readiness = Callable[[], str | None]
SHUTDOWN_DEADLINE = 2
#: How long a scrape waits for state that must be fetched first (e.g. from NATS).
REFRESH_TIMEOUT = 2.0


class HealthServerError(RuntimeError):
    """The health and metrics port cannot be bound."""


def health_app(
    registry: CollectorRegistry,
    readiness: Readiness,
    *,
    refresh: Callable[[], Awaitable[None]] | None = None,
) -> Starlette:
    """The ASGI app; ``refresh`` runs before each scrape (bounded by a timeout)."""

    async def livez(request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(request: Request) -> Response:
        reason = readiness()
        if reason is None:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not ready", "reason": reason}, status_code=503)

    async def metrics(request: Request) -> Response:
        if refresh is not None:
            try:
                async with asyncio.timeout(REFRESH_TIMEOUT):
                    await refresh()
            except Exception as exc:  # a scrape still answers, with the last known values
                log.debug("metrics refresh failed: %r", exc)
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(registry), headers={"Content-Type": content_type})

    return Starlette(
        routes=[
            Route("/livez", livez, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ]
    )


class _Server(uvicorn.Server):
    """uvicorn that leaves signals to the service and says when it is listening."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the service owns SIGTERM/SIGINT

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.listening.set()


class HealthServer:
    """Serves :func:`health_app` on ``host:port`` while the ``async with`` block runs."""

    def __init__(self, app: Starlette, *, host: str, port: int, name: str) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self.name = name
        self.port: int | None = None
        self._socket: socket.socket | None = None
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Bind and serve; raises :class:`HealthServerError` if the port is taken."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            sock = socket.create_server((self.host, self.requested_port), family=family)
        except OSError as exc:
            raise HealthServerError(
                f"{self.name} cannot serve /metrics on {self.host}:{self.requested_port}: {exc}"
            ) from exc
        self._socket = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_config=None,  # the service's logging applies
            access_log=False,
            ws="none",
            server_header=False,
            timeout_graceful_shutdown=SHUTDOWN_DEADLINE,
        )
        server = self._server = _Server(config)
        self._task = asyncio.create_task(self._serve(server, sock), name=f"{self.name} health")
        listening = asyncio.create_task(server.listening.wait())
        try:
            await asyncio.wait({self._task, listening}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            listening.cancel()
        if self._task.done():
            task, self._task, self._server, self._socket = self._task, None, None, None
            sock.close()
            task.result()  # raises why it could not start
            raise HealthServerError(f"{self.name}: the health server stopped at start")
        log.info(
            "%s: /metrics, /livez and /readyz on http://%s:%d", self.name, self.host, self.port
        )

    async def _serve(self, server: _Server, sock: socket.socket) -> None:
        try:
            await server.serve(sockets=[sock])
        except SystemExit as exc:  # how uvicorn reports a failed startup
            raise HealthServerError(f"{self.name}: health server failed ({exc.code})") from None

    async def stop(self) -> None:
        """Stop serving (idempotent); open requests get :data:`SHUTDOWN_DEADLINE` seconds."""
        server, task, sock = self._server, self._task, self._socket
        self._server = self._task = self._socket = None
        if server is not None:
            server.should_exit = True
        if task is not None:
            try:
                await task
            except Exception as exc:  # stopping anyway: say what went wrong, do not raise
                log.error("%s: the health server failed: %r", self.name, exc)
        if sock is not None:
            sock.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
