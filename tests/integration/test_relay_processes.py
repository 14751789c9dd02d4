"""Several relay processes on one port (``OYE_RELAY_PROCESSES``, SO_REUSEPORT): the kernel
spreads chargers over them, each frame names the relay that holds its charger, injections
reach a charger on either relay, a charger that comes back on the other relay takes over,
and a relay that was not asked to share cannot take the port."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from oye_cli.simulator import SimulatedCharger
from oye_relay.session import REPLACED_REASON
from oye_shared import headers as h
from oye_shared.settings import Settings
from oye_shared.subjects import EventKind, Subjects
from tests.peers.csms import CsmsServer
from tests.support.relay import Watcher, event_body, eventually, relay_running, watching
from tests.support.relay_processes import RelayProcesses, relay_processes_running
from tests.support.stack import ADMIN_PASSWORD, api_running

pytestmark = pytest.mark.integration

SUBJECTS = Subjects("oye")
CHARGERS = 24  # all on one of two relays by chance: 2 in 2**24


@pytest.fixture
async def relays(settings: Settings) -> AsyncIterator[RelayProcesses]:
    """Two relay processes on one port behind a real CSMS, and the API in this process."""
    async with CsmsServer() as csms:
        upstream = settings.model_copy(
            update={"upstream_url": csms.url, "admin_password": ADMIN_PASSWORD}
        )
        async with relay_processes_running(upstream, 2) as running, api_running(upstream):
            yield running


#: Every charger's "connected" event.
CONNECTED = f"{SUBJECTS.prefix}.events.*.{EventKind.CONNECTED}"


async def holders(events: Watcher, count: int) -> dict[str, str]:
    """Charge point id -> the relay that announced it connected (its first connection)."""
    found: dict[str, str] = {}
    for msg in await events.wait_for_count(count):
        body = event_body(msg)
        found.setdefault(body["chargePointId"], body["relay"])
    return found


@contextlib.asynccontextmanager
async def booted(relays: RelayProcesses, count: int) -> AsyncIterator[list[SimulatedCharger]]:
    async with contextlib.AsyncExitStack() as stack:
        chargers = [
            await stack.enter_async_context(SimulatedCharger(relays.url(f"CP-{n}"), f"CP-{n}"))
            for n in range(count)
        ]
        for charger in chargers:
            await charger.boot()
        yield chargers


async def test_chargers_are_spread_over_both_relays_and_frames_name_the_relay_holding_them(
    relays: RelayProcesses, nc: Client
) -> None:
    """24 chargers on one port land on both processes (explicit OYE_RELAY_ID: -1, -2), and
    every frame of a charger is published with its relay's id."""
    assert relays.relay_ids == {"relay-test-1", "relay-test-2"}
    async with (
        watching(nc, "oye.frames.>") as frames,
        watching(nc, CONNECTED) as events,
        booted(relays, CHARGERS),
    ):
        held = await holders(events, CHARGERS)
        # The boot and its answer of each charger.
        messages = await frames.wait_for_count(2 * CHARGERS)
    by_charger: dict[str, set[str]] = {}
    for msg in messages:
        headers = msg.headers or {}
        by_charger.setdefault(headers[h.CHARGE_POINT], set()).add(headers[h.RELAY])
    assert {cp: relay for cp, (relay,) in by_charger.items()} == held
    assert set(held.values()) == relays.relay_ids


async def test_an_injection_reaches_a_charger_whichever_relay_holds_it(
    relays: RelayProcesses, nc: Client
) -> None:
    """The API sends GetConfiguration to every charger over NATS; each charger, on either
    relay, answers it; the API counts both relays as live."""
    async with watching(nc, CONNECTED) as events, booted(relays, CHARGERS) as chargers:
        held = await holders(events, CHARGERS)
        async with relays.client() as api:
            for charger in chargers:
                reply = await api.post(
                    f"/api/inject/{charger.charge_point_id}",
                    json={"action": "GetConfiguration", "payload": {"key": ["HeartbeatInterval"]}},
                )
                assert reply.status_code == 200, reply.text
                [key] = reply.json()["configurationKey"]
                assert key["key"] == "HeartbeatInterval"
                assert any("GetConfiguration" in frame for frame in charger.received)

            async def both_live() -> bool:
                health = (await api.get("/health")).json()
                return bool(health["relays"] == 2 and health["chargers"] == CHARGERS)

            await eventually(both_live, seconds=30)
    assert set(held.values()) == relays.relay_ids


async def connect_until_moved(
    relays: RelayProcesses, events: Watcher, stack: contextlib.AsyncExitStack
) -> tuple[SimulatedCharger, str, SimulatedCharger, str]:
    """Connect CP-MOVE again and again until a connection lands on the other relay than
    the one holding it: (the held connection, its relay, the new one, its relay). A new
    connection on the same relay replaces the old one there."""
    held: SimulatedCharger | None = None
    held_by = ""
    for attempt in range(1, 60):
        charger = await stack.enter_async_context(
            SimulatedCharger(relays.url("CP-MOVE"), "CP-MOVE")
        )
        relay = event_body((await events.wait_for_count(attempt))[-1])["relay"]
        if held is not None and relay != held_by:
            return held, held_by, charger, relay
        if held is not None:
            assert await held.wait_closed() == 1000
        await charger.boot()
        held, held_by = charger, relay
    raise AssertionError("60 connections, all on one relay: is the port shared at all?")


async def test_a_charger_that_reconnects_on_the_other_relay_takes_over_cleanly(
    relays: RelayProcesses, nc: Client
) -> None:
    """The old relay closes its connection (1000, replaced) and says which relay took it;
    the charger answers injections on the new one, and the API shows it ONLINE there."""
    async with (
        contextlib.AsyncExitStack() as stack,
        watching(nc, SUBJECTS.events("CP-MOVE", EventKind.CONNECTED)) as events,
        watching(nc, SUBJECTS.events("CP-MOVE", EventKind.REPLACED)) as replaced,
    ):
        old, old_relay, new, new_relay = await connect_until_moved(relays, events, stack)
        assert await old.wait_closed() == 1000
        assert old.connection.close_reason == REPLACED_REASON

        def by_other_relay(msg: Msg) -> bool:
            body = event_body(msg)
            return bool(body["relay"] == old_relay and body.get("byRelay") == new_relay)

        await replaced.wait_for(by_other_relay)
        await new.boot()
        async with relays.client() as api:
            reply = await api.post(
                "/api/inject/CP-MOVE", json={"action": "GetConfiguration", "payload": {}}
            )
            assert reply.status_code == 200, reply.text
            assert any("GetConfiguration" in frame for frame in new.received)
            assert not any("GetConfiguration" in frame for frame in old.received)

            async def online_on_new_relay() -> dict[str, Any] | None:
                body: dict[str, Any] = (await api.get("/api/chargers/CP-MOVE")).json()
                return body if (body["status"], body["relay"]) == ("ONLINE", new_relay) else None

            await eventually(online_on_new_relay, seconds=30)


async def test_a_relay_not_asked_to_share_cannot_take_the_shared_port(
    relays: RelayProcesses,
) -> None:
    """OYE_OCPP_REUSE_PORT unset: a relay started by mistake on the relays' port fails to
    bind instead of silently taking a share of the chargers."""
    stray = relays.settings.model_copy(
        update={"relay_id": "stray", "metrics_port": 0, "ocpp_reuse_port": False}
    )
    with pytest.raises(OSError, match=r"(?i)address already in use"):
        async with relay_running(stray):
            pass
