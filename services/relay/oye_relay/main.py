"""``oye relay``: settings -> health server -> NATS -> server -> signal -> shutdown.

The health server (``/metrics``, ``/livez``, ``/readyz`` on ``OYE_METRICS_PORT``) starts
first and stops last, so an orchestrator sees the relay come up and go down.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging

from oye_relay.masking import url_without_password
from oye_relay.offline_queue import ReplayStore
from oye_relay.publisher import Publisher
from oye_relay.server import Relay
from oye_relay.takeover import follow_takeovers
from oye_relay.tls import ChargerTLSError, url_scheme
from oye_shared import bus
from oye_shared.charger_auth import CHARGER_AUTH_BUCKET
from oye_shared.health import HealthServer, HealthServerError, health_app
from oye_shared.http_guard import ConnectionLimits
from oye_shared.kv import bucket_config, bucket_stream, open_bucket, open_state_buckets
from oye_shared.kv_mirror import BucketMirror
from oye_shared.limits import LIMITS_BUCKET
from oye_shared.service import run_service
from oye_shared.settings import Settings
from oye_shared.stream_tail import StreamTail

log = logging.getLogger(__name__)

SHUTDOWN_DEADLINE = 5.0
#: Allocations between two young-generation collections (CPython's default: 700).
GC_THRESHOLD_YOUNG = 50_000


class Readiness:
    """Why the relay cannot take chargers now, for ``/readyz`` (None: it can)."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.listening = False
        self.stopping = False
        self.bus: asyncio.Task[None] | None = None

    def reason(self) -> str | None:
        if self.stopping:
            return "shutting down"
        if not self.listening:
            return "not listening for chargers yet"
        if self.bus is not None and self.bus.done():
            return "the NATS tasks have ended"
        nc = self.relay.nc
        if nc is None or not nc.is_connected:
            return "NATS not connected"
        return None


async def run(
    settings: Settings,
    *,
    stop: asyncio.Event,
    started: asyncio.Event | None = None,
    metrics_port: asyncio.Future[int] | None = None,
) -> None:
    """Run the relay until ``stop`` is set, then shut down in order within a deadline.

    ``metrics_port`` learns the port of ``/metrics`` once it is bound (``OYE_METRICS_PORT``
    may be 0: any free port).
    """
    publisher = Publisher(settings.publish_buffer)
    relay = Relay(settings, publisher)
    relay.upstream_options  # noqa: B018 - builds the TLS context now: its warnings and errors at start
    if settings.charger_auth == "none":
        log.warning(
            "OYE_CHARGER_AUTH=none: anyone who reaches this port may connect as any charger"
        )
    readiness = Readiness(relay)
    health = HealthServer(
        health_app(relay.metrics.registry, readiness.reason),
        host=settings.bind_host,
        port=settings.metrics_port,
        name="relay",
        limits=ConnectionLimits.from_settings(settings),
    )
    await health.start()
    if metrics_port is not None and health.port is not None:
        metrics_port.set_result(health.port)
    nats_task = readiness.bus = asyncio.create_task(
        _run_bus(settings, publisher, relay), name="nats"
    )
    gc_threshold = gc.get_threshold()
    try:
        async with relay.serve(), relay.keepalive.running():
            readiness.listening = True
            log.info(
                "relay %s: chargers connect to %s://%s:%d/ocpp/{chargePointId}; upstream %s",
                settings.relay_id,
                url_scheme(settings),
                settings.bind_host,
                settings.ocpp_port,
                url_without_password(settings.upstream_url or "none (standalone)"),
            )
            # What exists now lives as long as the process: keep the collector off it, so a
            # charger storm's collections only walk the sessions (docs/PERFORMANCE.md).
            gc.freeze()
            # Sessions are long-lived and rarely make cyclic garbage: with the default 700,
            # the collector took a third of a storm's CPU walking live sessions again and
            # again (docs/PERFORMANCE.md, "Connection storms"). Restored at the end (tests
            # run the relay in their own process).
            gc.set_threshold(GC_THRESHOLD_YOUNG, 50, 100)
            if started is not None:
                started.set()
            await stop.wait()
            readiness.stopping = True
            log.info("relay shutting down")
            await relay.close_all()
        await relay.fleet.shutdown()
        # Let the last frames and events reach NATS, if it is there.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SHUTDOWN_DEADLINE):
                await publisher.wait_idle()
    finally:
        nats_task.cancel()
        done, _ = await asyncio.wait({nats_task}, timeout=SHUTDOWN_DEADLINE)
        if not done:
            log.error("NATS tasks did not stop in time; leaving them")
        elif not nats_task.cancelled() and (error := nats_task.exception()) is not None:
            log.error("NATS tasks failed: %r", error)
        await health.stop()
        gc.set_threshold(*gc_threshold)


async def _run_bus(settings: Settings, publisher: Publisher, relay: Relay) -> None:
    nc = await bus.connect(settings, name=f"relay-{settings.relay_id}")
    try:
        # Before taking injections: a limit set through the API is re-applied from here.
        js, prefix = nc.jetstream(), settings.subject_prefix
        limits = relay.limits = BucketMirror(
            await open_bucket(js, bucket_config(prefix, LIMITS_BUCKET)),
            "limits",
            StreamTail(js, bucket_stream(prefix, LIMITS_BUCKET)),
        )
        # Before taking chargers' traffic off NATS: their offline queues must be readable.
        replay_store = relay.replay_store = await ReplayStore.open(nc, settings.subject_prefix)
        credentials = await open_bucket(
            nc.jetstream(), bucket_config(settings.subject_prefix, CHARGER_AUTH_BUCKET)
        )
        await relay.attach_bus(nc)
        await follow_takeovers(nc, relay.subjects, settings.relay_id, relay.sessions)
        await bus.ensure_traffic_stream(nc, settings)
        bus.cancellation_checkpoint()
        config_kv, _, _ = await open_state_buckets(nc, settings.subject_prefix)
        async with asyncio.TaskGroup() as group:
            group.create_task(relay.live_config.follow(config_kv), name="live config")
            group.create_task(
                relay.transaction_ids.keep_reserved(config_kv), name="transaction ids"
            )
            group.create_task(publisher.run(nc), name="publisher")
            group.create_task(relay.fleet.run(nc), name="fleet state")
            group.create_task(relay.gate.follow(credentials), name="charger credentials")
            group.create_task(limits.follow(), name="limits mirror")
            group.create_task(replay_store.follow(), name="replay store")
    finally:
        await bus.close_connection(nc)


def main() -> None:
    run_service(run, fatal=(HealthServerError, ChargerTLSError))
