"""Metrics, liveness and readiness of the relay, the logger and the inject-api, scraped over
HTTP from the real services (real NATS, real OCPP peers) and parsed with prometheus-client.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from nats.aio.client import Client
from ocpp.v16 import call as call16
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from oye_cli.nats_server import NatsServer
from oye_cli.simulator import SimulatedCharger
from oye_logger.consumer import ConsumerOptions, Progress
from oye_logger.main import run as run_logger
from oye_relay.main import run as run_relay
from oye_shared import bus
from oye_shared import headers as h
from oye_shared.settings import Settings
from oye_shared.subjects import Direction, Subjects
from tests.peers.csms import CsmsServer
from tests.support.relay import RunningRelay, eventually, service_running
from tests.support.stack import ADMIN_PASSWORD, Stack, api_running

pytestmark = pytest.mark.integration

WAIT = 10.0
INJECT_ROUTE = "/api/inject/{chargePointId:path}"
#: A frame time long past: the logger's newest-frame age must show it.
T0 = 1_750_000_000.0  # 2025-06-15T15:06:40Z
PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass
class Endpoint:
    """A service's health port (or the API), read as Prometheus and an orchestrator would."""

    http: httpx.AsyncClient

    async def value(self, name: str, **labels: str) -> float | None:
        """The value of the sample ``name`` with exactly these labels, None if absent."""
        reply = await self.http.get("/metrics")
        assert reply.status_code == 200
        for family in text_string_to_metric_families(reply.text):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return sample.value
        return None

    async def until(
        self, name: str, wanted: Callable[[float | None], bool], **labels: str
    ) -> float | None:
        """Scrape until ``wanted(value)`` (metrics send no notification: poll them)."""
        seen: list[float | None] = []

        async def check() -> bool:
            seen.append(await self.value(name, **labels))
            return wanted(seen[-1])

        try:
            await eventually(check, seconds=WAIT, every=0.05)
        except TimeoutError:
            raise AssertionError(f"{name}{labels} stayed at {seen[-1:]}") from None
        return seen[-1]

    async def equals(self, name: str, expected: float, **labels: str) -> None:
        await self.until(name, lambda value: value == expected, **labels)

    async def ready(self) -> tuple[int, dict[str, Any]]:
        reply = await self.http.get("/readyz")
        body: dict[str, Any] = reply.json()
        return reply.status_code, body

    async def until_ready(self, status: int) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            code, body = await self.ready()
            return body if code == status else None

        body: dict[str, Any] = await eventually(check, seconds=WAIT, every=0.05)
        return body


@contextlib.asynccontextmanager
async def endpoint(port: int) -> AsyncIterator[Endpoint]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=WAIT) as http:
        yield Endpoint(http)


@contextlib.asynccontextmanager
async def relay_with_metrics(settings: Settings) -> AsyncIterator[tuple[RunningRelay, Endpoint]]:
    """The relay, and its metrics port (OYE_METRICS_PORT=0: the one the OS chose)."""
    port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    run = functools.partial(run_relay, metrics_port=port)
    async with service_running(run, settings) as (stop, task), endpoint(port.result()) as health:
        yield RunningRelay(settings, stop, task), health


@contextlib.asynccontextmanager
async def logger_with_metrics(
    settings: Settings, progress: Progress, options: ConsumerOptions | None = None
) -> AsyncIterator[Endpoint]:
    port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    run = functools.partial(
        run_logger,
        metrics_port=port,
        progress=progress,
        options=options or ConsumerOptions(ack_wait=5.0, fetch_timeout=0.5),
    )
    async with service_running(run, settings), endpoint(port.result()) as health:
        yield health


@contextlib.asynccontextmanager
async def stack_with_metrics(settings: Settings) -> AsyncIterator[tuple[Stack, Endpoint]]:
    settings = settings.model_copy(update={"admin_password": ADMIN_PASSWORD})
    async with relay_with_metrics(settings) as (relay, health), api_running(settings):
        yield Stack(settings, relay), health


# --- the relay ------------------------------------------------------------------------------


async def test_a_boot_through_the_relay_is_counted_and_timed(settings: Settings) -> None:
    """Frames per direction move, the boot's round trip to the CSMS is observed, and the
    charger is counted while it is connected."""
    async with (
        CsmsServer() as csms,
        relay_with_metrics(settings.model_copy(update={"upstream_url": csms.url})) as (
            relay,
            health,
        ),
    ):
        assert await health.value("oye_frames_total", direction="UPSTREAM") == 0
        assert await health.value("oye_chargers_connected", ocpp_version="1.6") == 0
        async with SimulatedCharger(relay.url("CP-M1"), "CP-M1", version="1.6") as charger:
            await charger.boot()
            async with asyncio.timeout(WAIT):
                handle = await csms.wait_for_charger("CP-M1")
            await handle.call(call16.GetConfiguration(key=["HeartbeatInterval"]))
            await health.equals(
                "oye_call_duration_seconds_count", 1, caller="charger", action="BootNotification"
            )
            await health.equals(
                "oye_call_duration_seconds_count", 1, caller="csms", action="GetConfiguration"
            )
            # Boot and GetConfiguration's answer up; the boot's answer and the call down.
            assert await health.value("oye_frames_total", direction="UPSTREAM") == 2
            assert await health.value("oye_frames_total", direction="DOWNSTREAM") == 2
            assert await health.value("oye_chargers_connected", ocpp_version="1.6") == 1
            assert await health.value("oye_chargers_connected", ocpp_version="2.0.1") == 0
            boot_sum = await health.value(
                "oye_call_duration_seconds_sum", caller="charger", action="BootNotification"
            )
            assert boot_sum is not None
            assert 0 < boot_sum < WAIT
        await health.equals("oye_chargers_connected", 0, ocpp_version="1.6")


async def test_the_csms_link_of_each_charger_shows_up_and_down(settings: Settings) -> None:
    """The CSMS goes away: the charger's link reads 0 and counts as down; back: 1 and up.
    The charger gone, its series goes too."""
    async with (
        CsmsServer() as csms,
        relay_with_metrics(settings.model_copy(update={"upstream_url": csms.url})) as (
            relay,
            health,
        ),
    ):
        async with SimulatedCharger(relay.url("CP M2"), "CP M2", version="2.0.1"):
            await health.equals("oye_upstream_connected", 1, charge_point_id="CP M2")
            assert await health.value("oye_upstream_chargers", state="up") == 1
            await csms.stop()
            await health.equals("oye_upstream_connected", 0, charge_point_id="CP M2")
            assert await health.value("oye_upstream_chargers", state="down") == 1
            assert await health.value("oye_upstream_chargers", state="up") == 0
            await csms.start()
            await health.equals("oye_upstream_connected", 1, charge_point_id="CP M2")
        await health.until(
            "oye_upstream_connected", lambda value: value is None, charge_point_id="CP M2"
        )
        assert await health.value("oye_upstream_chargers", state="up") == 0


async def test_the_replay_backlog_and_its_oldest_message_show_while_the_csms_is_away(
    settings: Settings,
) -> None:
    """CSMS away: what it must get later is counted and the oldest ages; back: both 0."""
    async with (
        CsmsServer() as csms,
        relay_with_metrics(settings.model_copy(update={"upstream_url": csms.url})) as (
            relay,
            health,
        ),
        SimulatedCharger(relay.url("CP-M7"), "CP-M7", version="1.6") as charger,
    ):
        await charger.boot()
        await health.equals("oye_upstream_connected", 1, charge_point_id="CP-M7")
        assert await health.value("oye_replay_backlog_messages") == 0
        await csms.stop()
        await health.equals("oye_upstream_connected", 0, charge_point_id="CP-M7")
        await charger.status(1, "Preparing")
        await charger.status(1, "Available")
        await health.equals("oye_replay_backlog_messages", 2)
        await health.until("oye_replay_oldest_age_seconds", lambda age: (age or 0) > 0)
        await csms.start()
        await health.equals("oye_replay_backlog_messages", 0)
        assert await health.value("oye_replay_oldest_age_seconds") == 0


async def test_answers_the_proxy_gives_in_the_csms_place_are_counted(settings: Settings) -> None:
    """Standalone, the relay answers Boot and Heartbeat itself: offline answers by action."""
    async with (
        relay_with_metrics(settings) as (relay, health),
        SimulatedCharger(relay.url("CP-M3"), "CP-M3", version="1.6") as charger,
    ):
        await charger.boot()
        await charger.heartbeat()
        await charger.heartbeat()
        await health.equals("oye_offline_answers_total", 1, action="BootNotification")
        await health.equals("oye_offline_answers_total", 2, action="Heartbeat")
        assert await health.value("oye_frames_total", direction="PROXY_RESPONSE") == 3
        assert await health.value("oye_upstream_chargers", state="none") == 1
        # Standalone chargers have no CSMS link to report.
        assert await health.value("oye_upstream_connected", charge_point_id="CP-M3") is None


async def test_injected_calls_are_timed_and_a_silent_charger_counts_timeouts(
    settings: Settings,
) -> None:
    """An answered injection lands in the injected histogram, on the relay and on the API;
    one the charger leaves unanswered counts as a lane timeout and an injection timeout."""
    async with stack_with_metrics(settings) as (stack, health):
        async with SimulatedCharger(stack.relay.url("CP-M4"), "CP-M4", version="1.6") as charger:
            await charger.boot()
            async with stack.client() as http:
                reply = await http.post(
                    "/api/inject/CP-M4",
                    json={"action": "GetConfiguration", "payload": {"key": ["HeartbeatInterval"]}},
                )
            assert reply.status_code == 200
            await health.equals(
                "oye_call_duration_seconds_count", 1, caller="injected", action="GetConfiguration"
            )
        silent = await connect(stack.relay.url("CP-M5"), subprotocols=["ocpp1.6"])  # type: ignore[list-item]
        try:
            async with stack.client() as http:
                reply = await http.post(
                    "/api/inject/CP-M5",
                    json={"action": "Reset", "payload": {"type": "Soft"}, "timeout": 0.5},
                )
            assert reply.status_code == 504
            assert json.loads(await silent.recv())[2] == "Reset"  # it was sent, never answered
        finally:
            await silent.close()
        await health.equals("oye_lane_timeouts_total", 1, origin="injected")
        assert await health.value("oye_lane_timeouts_total", origin="csms") == 0
        assert await health.value("oye_injection_timeouts_total", action="Reset") == 1
        assert (
            await health.value("oye_call_duration_seconds_count", caller="injected", action="Reset")
            is None
        )
        async with stack.client() as http:
            api_metrics = Endpoint(http)
            assert (
                await api_metrics.value(
                    "oye_api_injection_duration_seconds_count",
                    action="GetConfiguration",
                    outcome="result",
                )
                == 1
            )
            assert (
                await api_metrics.value(
                    "oye_api_injection_duration_seconds_count", action="Reset", outcome="timeout"
                )
                == 1
            )


async def test_while_nats_is_down_the_buffer_fills_overflows_and_readyz_says_so(
    settings: Settings, nats_server: NatsServer
) -> None:
    """NATS stops: /readyz is 503, frames wait in the buffer up to its size and the rest
    overflow; NATS is back: /readyz 200 and the buffer drains. /livez answers throughout."""
    small = settings.model_copy(update={"publish_buffer": 4})
    async with (
        relay_with_metrics(small) as (relay, health),
        SimulatedCharger(relay.url("CP-M6"), "CP-M6", version="1.6") as charger,
    ):
        await charger.boot()
        assert await health.until_ready(200) == {"status": "ready"}
        await health.equals("oye_publish_buffer_messages", 0)
        assert await health.value("oye_publish_buffer_capacity") == 4
        assert await health.value("oye_nats_connected") == 1
        nats_server.stop()
        body = await health.until_ready(503)
        assert body == {"status": "not ready", "reason": "NATS not connected"}
        assert await health.value("oye_nats_connected") == 0
        assert (await health.http.get("/livez")).status_code == 200
        for _ in range(3):  # each: the Heartbeat and the proxy's answer, 6 frames in all
            await charger.heartbeat()
        assert await health.value("oye_publish_buffer_messages") == 4
        assert await health.value("oye_publish_overflows_total") == 2
        published = await health.value("oye_published_messages_total")
        nats_server.start()
        assert await health.until_ready(200) == {"status": "ready"}
        await health.equals("oye_publish_buffer_messages", 0)
        assert await health.value("oye_published_messages_total") == (published or 0) + 4


# --- the logger -----------------------------------------------------------------------------


def stamped_frame(n: int, at: float) -> tuple[str, bytes, dict[str, str]]:
    """A Heartbeat CALL as the relay publishes it, with ``Oye-Time`` = ``at``."""
    frame_id = h.new_frame_id()
    headers = {
        h.DIRECTION: Direction.UPSTREAM.value,
        h.CHARGE_POINT: "CP-L",
        h.TIME: h.rfc3339(datetime.fromtimestamp(at, UTC)),
        h.FRAME_ID: frame_id,
        h.NATS_MSG_ID: frame_id,
        h.SUBPROTOCOL: "ocpp1.6",
        h.RELAY: "relay-test",
        h.MESSAGE_TYPE: "CALL",
        h.MESSAGE_ID: f"m{n}",
        h.ACTION: "Heartbeat",
    }
    subject = Subjects("oye").frames("CP-L", Direction.UPSTREAM)
    return subject, f'[2,"m{n}","Heartbeat",{{}}]'.encode(), headers


async def publish_frames(nc: Client, settings: Settings, count: int, first_at: float) -> None:
    await bus.ensure_traffic_stream(nc, settings)
    js = nc.jetstream()
    for n in range(count):
        subject, body, headers = stamped_frame(n, first_at + n)
        await js.publish(subject, body, headers=headers)


async def test_the_logger_counts_what_it_stores_and_how_old_the_newest_frame_is(
    settings: Settings, nc: Client, nats_server: NatsServer
) -> None:
    """Stored frames are counted by store, each batch is timed, the consumer has nothing
    pending afterwards, and the newest frame's time and age are those it carried."""
    progress = Progress()
    async with logger_with_metrics(settings, progress) as health:
        assert (await health.http.get("/livez")).json() == {"status": "alive"}
        assert await health.until_ready(200) == {"status": "ready"}
        assert await health.value("oye_logger_frames_stored_total", store="sqlite") is None
        await publish_frames(nc, settings, 10, T0)
        async with asyncio.timeout(WAIT):
            await progress.wait_for(lambda p: p.inserted >= 10)
        await health.equals("oye_logger_frames_stored_total", 10, store="sqlite")
        batches = await health.value("oye_logger_batch_write_seconds_count", store="sqlite")
        assert batches is not None
        assert batches >= 1
        await health.equals("oye_logger_consumer_ack_pending_messages", 0)
        assert await health.value("oye_logger_consumer_pending_messages") == 0
        assert await health.value("oye_logger_newest_frame_timestamp_seconds") == T0 + 9
        age = await health.value("oye_logger_newest_frame_age_seconds")
        assert age is not None
        assert age >= time.time() - (T0 + 9) - 1
        assert await health.value("oye_logger_errors_total", stage="store") == 0
        nats_server.stop()
        body = await health.until_ready(503)
        assert body == {"status": "not ready", "reason": "NATS not connected"}
        assert await health.value("oye_nats_connected") == 0
        nats_server.start()
        assert await health.until_ready(200) == {"status": "ready"}


@pytest.mark.postgres
async def test_a_store_that_cannot_write_shows_as_lag_errors_and_not_ready(
    settings: Settings, nc: Client
) -> None:
    """The log table disappears: writes fail and are counted, /readyz is 503 and the frames
    wait in the consumer; the table is back: they are stored and /readyz is 200 again."""
    schema = f"oye_metrics_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(PG_DSN)
    await admin.execute(f"CREATE SCHEMA {schema}")
    try:
        pg = settings.model_copy(update={"db_url": f"{PG_DSN}?search_path={schema}"})
        fast = ConsumerOptions(ack_wait=30.0, fetch_timeout=0.5, retry_delay=0.05)
        progress = Progress()
        async with logger_with_metrics(pg, progress, fast) as health:
            await health.until_ready(200)
            await admin.execute(f"ALTER TABLE {schema}.logs RENAME TO logs_away")
            await publish_frames(nc, settings, 10, time.time())
            body = await health.until_ready(503)
            assert body["reason"].startswith("log store not writable")
            errors = await health.until("oye_logger_errors_total", bool, stage="store")
            assert errors is not None
            assert errors >= 1
            pending = await health.value("oye_logger_consumer_pending_messages") or 0
            unacked = await health.value("oye_logger_consumer_ack_pending_messages") or 0
            assert pending + unacked == 10
            assert await health.value("oye_logger_frames_stored_total", store="postgres") is None
            await admin.execute(f"ALTER TABLE {schema}.logs_away RENAME TO logs")
            await health.equals("oye_logger_frames_stored_total", 10, store="postgres")
            assert await health.until_ready(200) == {"status": "ready"}
            await health.equals("oye_logger_consumer_ack_pending_messages", 0)
            assert await health.value("oye_logger_consumer_pending_messages") == 0
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


# --- the inject-api -------------------------------------------------------------------------


async def test_the_api_counts_requests_by_route_template_and_follows_nats(
    settings: Settings, nats_server: NatsServer
) -> None:
    """Requests are counted by route template (never the charger's id) and status; /readyz
    follows NATS; /livez and /health stay where they were."""
    settings = settings.model_copy(update={"admin_password": ADMIN_PASSWORD})
    async with (
        api_running(settings),
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{settings.http_port}",
            auth=("admin", ADMIN_PASSWORD),
            timeout=WAIT,
        ) as http,
    ):
        metrics = Endpoint(http)
        assert (await http.get("/livez")).json() == {"status": "alive"}
        assert await metrics.ready() == (200, {"status": "ready"})
        assert (await http.get("/health")).status_code == 200
        for _ in range(2):
            reply = await http.post(
                "/api/inject/Nobody%20Here", json={"action": "Reset", "payload": {"type": "Soft"}}
            )
            assert reply.status_code == 503
        assert (await http.get("/no/such/page")).status_code == 404
        text = (await http.get("/metrics")).text
        assert "Nobody" not in text
        count = "oye_api_http_requests_total"
        assert await metrics.value(count, method="POST", route=INJECT_ROUTE, status="503") == 2
        assert await metrics.value(count, method="GET", route="/health", status="200") == 1
        assert await metrics.value(count, method="GET", route="other", status="404") == 1
        assert (
            await metrics.value(
                "oye_api_injection_duration_seconds_count", action="Reset", outcome="not_connected"
            )
            == 2
        )
        nats_server.stop()
        body = await metrics.until_ready(503)
        assert body == {"status": "not ready", "reason": "NATS not connected"}
        assert await metrics.value("oye_nats_connected") == 0
        nats_server.start()
        assert await metrics.until_ready(200) == {"status": "ready"}
