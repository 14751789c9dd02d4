"""The logger's Prometheus metrics, and its ``/metrics``, ``/livez`` and ``/readyz`` server.

One registry per logger (never prometheus-client's global one: a process may run several
loggers, the tests do). :class:`LoggerMetrics` is told of each committed batch and each
failure by the consumer; the consumer's lag is asked of JetStream when Prometheus scrapes.

The HTTP server on ``OYE_LOGGER_METRICS_PORT`` is the relay's too: :mod:`oye_shared.health`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric

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
