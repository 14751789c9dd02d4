"""The offline replay's test scenery: a CSMS that goes away and comes back, a relay in its
own process (to be SIGKILLed), and what the CSMS received."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from oye_cli.simulator.charger import SimulatedCharger
from oye_shared.settings import Settings
from tests.peers.csms import ChargerHandle, CsmsServer
from tests.support.relay import RunningRelay, Watcher, relay_running

CSMS_FIRST_ID = 500
TAGS = "TAG-1,TAG-2,TAG-3,TAG-5,TAG-7"  # accepted while the CSMS is away


@asynccontextmanager
async def csms_and_relay(settings: Settings) -> AsyncIterator[tuple[CsmsServer, RunningRelay]]:
    async with CsmsServer(first_transaction_id=CSMS_FIRST_ID) as csms:
        configured = settings.model_copy(
            update={"upstream_url": csms.url, "inject_timeout": 5.0, "offline_id_tags": TAGS}
        )
        async with relay_running(configured) as relay:
            yield csms, relay


async def csms_goes_down(csms: CsmsServer, bus: Watcher) -> None:
    before = events_seen(bus, "upstream_down")
    await csms.stop()
    await bus.wait_for(lambda _: events_seen(bus, "upstream_down") > before)


async def csms_comes_back(csms: CsmsServer, bus: Watcher, cp: str) -> ChargerHandle:
    """Start the CSMS again; return its new connection once the replay is over."""
    before = events_seen(bus, "replayed")
    await csms.start()
    await bus.wait_for(lambda _: events_seen(bus, "replayed") > before, seconds=20)
    async with asyncio.timeout(5):
        return await csms.wait_for_charger(cp)


def events_seen(bus: Watcher, kind: str) -> int:
    return sum(1 for m in bus.messages if ".events." in m.subject and m.subject.endswith(kind))


def received_calls(handle: ChargerHandle) -> list[tuple[str, dict[str, Any]]]:
    """(action, payload) of every CALL the CSMS received on this connection, in order."""
    return [
        (f.action or "", f.payload)
        for f in handle.frames.frames
        if f.direction == "received" and f.action is not None
    ]


@asynccontextmanager
async def relay_process(settings: Settings) -> AsyncIterator[asyncio.subprocess.Process]:
    """``oye relay`` as its own process (so that it can be SIGKILLed)."""
    env = {
        **os.environ,
        "NATS_URL": settings.nats_servers[0],
        "OYE_BIND_HOST": settings.bind_host,
        "OYE_OCPP_PORT": str(settings.ocpp_port),
        "OYE_METRICS_PORT": "0",
        "OYE_UPSTREAM_URL": settings.upstream_url or "",
        "OYE_UPSTREAM_CONNECT_TIMEOUT": "2",
        "OYE_UPSTREAM_BACKOFF_MAX": "0.5",
        "OYE_RELAY_ID": "relay-proc",
        "OYE_OFFLINE_ID_TAGS": TAGS,
        "OYE_DATA_DIR": str(settings.data_dir),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "oye_cli.main",
        "relay",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await process.wait()


async def connect_when_listening(charger: SimulatedCharger) -> SimulatedCharger:
    """Connect ``charger`` (again) once the relay process listens."""
    async with asyncio.timeout(20):
        while True:
            try:
                await charger.connect()
                return charger
            except OSError:
                await asyncio.sleep(0.05)  # the relay process is still starting
