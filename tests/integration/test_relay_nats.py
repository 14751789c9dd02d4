"""The relay and NATS: the stream captures traffic, and a NATS outage loses nothing."""

from __future__ import annotations

import asyncio
import json

import nats
import nats.aio.client
import nats.errors
import pytest
from nats.aio.msg import Msg
from nats.js.api import StreamInfo
from nats.js.errors import NotFoundError
from websockets.asyncio.client import ClientConnection, connect

from oye_cli.nats_server import NatsServer
from oye_relay import handoff
from oye_shared import headers as h
from oye_shared.bus import confirmed
from oye_shared.settings import Settings
from tests.conftest import free_port
from tests.support.raw_csms import RawCsms
from tests.support.relay import eventually, relay_running

pytestmark = pytest.mark.integration


async def heartbeat(charger: ClientConnection, message_id: str) -> None:
    await charger.send(json.dumps([2, message_id, "Heartbeat", {}]))
    assert json.loads(await charger.recv()) == [3, message_id, {}]


async def stream_messages(url: str, stream: str, count: int) -> list[Msg]:
    """Read the first ``count`` messages of the stream, waiting for them to arrive."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()

        async def stream_exists() -> bool:
            try:
                await js.stream_info(stream)
            except NotFoundError:
                return False
            return True

        await eventually(stream_exists)  # the relay creates it in the background
        sub = await js.pull_subscribe("oye.>", stream=stream)
        got: list[Msg] = []
        while len(got) < count:
            got.extend(await sub.fetch(count - len(got), timeout=10))
        return got
    finally:
        await nc.close()


async def test_a_nats_outage_does_not_stop_traffic_and_loses_no_frame(
    settings: Settings, nats_server: NatsServer
) -> None:
    """NATS is killed mid-traffic and restarted: charger and CSMS keep talking, and every
    frame of the outage reaches the stream afterwards, in order, exactly once."""
    async with (
        RawCsms() as csms,
        relay_running(settings.model_copy(update={"upstream_url": csms.url})) as relay,
        connect(relay.url("CP-N"), subprotocols=["ocpp1.6"]) as charger,  # type: ignore[list-item]
    ):
        for i in range(5):
            await heartbeat(charger, f"before-{i}")
        # Frames so far are in the stream before we pull the plug.
        await stream_messages(nats_server.url, settings.stream_name, 1 + 10)
        nats_server.kill()
        for i in range(10):
            await heartbeat(charger, f"during-{i}")
        nats_server.start()
        for i in range(5):
            await heartbeat(charger, f"after-{i}")
        messages = await stream_messages(nats_server.url, settings.stream_name, 1 + 40)

    frames = [m for m in messages if ".frames." in m.subject]
    ids = [(m.headers or {})[h.MESSAGE_ID] for m in frames]
    expected = [
        f"{phase}-{i}"
        for phase, n in (("before", 5), ("during", 10), ("after", 5))
        for i in range(n)
    ]
    assert ids == [message_id for message_id in expected for _ in (0, 1)]
    directions = [(m.headers or {})[h.DIRECTION] for m in frames]
    assert directions == ["UPSTREAM", "DOWNSTREAM"] * 20
    assert len({(m.headers or {})[h.FRAME_ID] for m in frames}) == 40


async def test_the_stream_is_created_idempotently_with_the_configured_limits(
    settings: Settings,
) -> None:
    """Two relays create the traffic stream; the limits are those configured."""
    tuned = settings.model_copy(update={"stream_max_age": 3600.0, "stream_max_bytes": 10**8})
    second = tuned.model_copy(update={"ocpp_port": free_port(), "relay_id": "relay-two"})
    nc = await nats.connect(settings.nats_servers)
    js = nc.jetstream()

    async def stream_info() -> StreamInfo | None:
        try:
            return await js.stream_info(tuned.stream_name)
        except NotFoundError:
            return None

    try:
        async with relay_running(tuned), relay_running(second):
            info: StreamInfo = await eventually(stream_info)
    finally:
        await nc.close()
    assert info.config.subjects == ["oye.frames.>", "oye.events.>"]
    assert info.config.max_age == 3600.0
    assert info.config.max_bytes == 10**8
    assert info.config.duplicate_window == 120.0


async def test_a_handoff_subscription_gets_every_message_in_order_without_a_task(
    nc: nats.aio.client.Client, nats_server: NatsServer
) -> None:
    """The relay's per-charger subscriptions start no task, yet hear every message, in
    order, answer requests, and leave "no responders" once gone (pins nats-py internals)."""
    got: list[bytes] = []
    answering: set[asyncio.Task[None]] = set()

    def handler(msg: Msg) -> None:
        got.append(msg.data)
        if msg.reply:
            answering.add(asyncio.get_running_loop().create_task(msg.respond(b"re:" + msg.data)))

    tasks_before = len(asyncio.all_tasks())
    sub = await handoff.subscribe(nc, "t.inject.cp", handler)
    assert len(asyncio.all_tasks()) == tasks_before
    await confirmed(nc)  # the SUB has reached the server
    assert isinstance(sub._pending_queue, handoff._Handoff), "nats-py changed: see handoff.py"
    other = await nats.connect(nats_server.url)
    try:
        for n in range(200):
            await other.publish("t.inject.cp", str(n).encode())
        answer = await other.request("t.inject.cp", b"ping", timeout=5)
        assert answer.data == b"re:ping"
        assert got == [str(n).encode() for n in range(200)] + [b"ping"]
        assert sub.pending_msgs == 0
        assert sub._pending_size == 0
        await sub.unsubscribe()

        async def nobody_listens() -> bool:
            # Not nc.flush() first: nats-py puts its PING ahead of the UNSUB still queued
            # for its flusher, so the PONG can come before the server has the UNSUB.
            try:
                await other.request("t.inject.cp", b"anyone?", timeout=1)
            except nats.errors.NoRespondersError:
                return True
            except nats.errors.TimeoutError:  # reached the subscription on its way out
                return False
            raise AssertionError("answered after unsubscribing")

        await eventually(nobody_listens)
    finally:
        await other.close()


async def test_a_handoff_subscription_drains_with_its_connection(
    nats_server: NatsServer,
) -> None:
    """Draining the connection (the relay's shutdown) passes over handoff subscriptions."""
    client = await nats.connect(nats_server.url)
    got: list[Msg] = []
    await handoff.subscribe(client, "t.drain", got.append)
    await client.publish("t.drain", b"x")
    await client.flush()
    async with asyncio.timeout(5):
        await client.drain()
    assert [m.data for m in got] == [b"x"]


async def test_without_the_internals_a_subscription_falls_back_to_a_callback(
    nc: nats.aio.client.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A nats-py without the internals handoff.py relies on still delivers, with a task."""
    monkeypatch.setattr(handoff, "_takes_handoff", lambda sub: False)
    got: list[bytes] = []
    sub = await handoff.subscribe(nc, "t.fallback", lambda msg: got.append(msg.data))
    assert sub._wait_for_msgs_task is not None
    await nc.publish("t.fallback", b"1")
    await eventually(lambda: _done(bool(got)))
    assert got == [b"1"]


async def _done(value: bool) -> bool:
    return value
