"""Several relay processes on one port, started and supervised as ``oye up`` does it.

The relays are real processes (``python -m oye_cli.main relay``, through the supervisor's
own :func:`~oye_cli.supervisor.plan_relays` and :func:`~oye_cli.supervisor.supervise`),
configured only through the environment, as an operator's are; this process's
``PYTHONPATH`` goes with them, so a checkout's code is what runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx

from oye_cli.relays import RelayProcess
from oye_cli.supervisor import plan_relays, supervise
from oye_shared.settings import Settings, env_name
from tests.conftest import free_port
from tests.support.relay import eventually
from tests.support.stack import ADMIN_PASSWORD


def settings_env(settings: Settings) -> dict[str, str]:
    """This process's environment without OYE_* / NATS_URL, plus every setting that differs
    from its default, as the variables that set it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OYE_") and k != "NATS_URL"}
    for field, info in Settings.model_fields.items():
        value = getattr(settings, field)
        if value is None or value == info.get_default(call_default_factory=True):
            continue
        if isinstance(value, bool):
            env[env_name(field)] = str(value).lower()
        elif isinstance(value, str | int | float | Path):
            env[env_name(field)] = str(value)
        else:
            raise TypeError(f"{field}: pass {type(value).__name__} settings yourself")
    return env


def free_port_pair() -> int:
    """A free port whose next one is free too (two relays' metrics ports)."""
    while True:
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port


@dataclass
class RelayProcesses:
    settings: Settings
    relays: list[RelayProcess]

    @property
    def relay_ids(self) -> set[str]:
        return {relay.env[env_name("relay_id")] for relay in self.relays}

    def url(self, charge_point_id: str) -> str:
        return f"ws://127.0.0.1:{self.settings.ocpp_port}/ocpp/{quote(charge_point_id, safe='')}"

    def client(self) -> httpx.AsyncClient:
        """The API of this test (``tests.support.stack.api_running``), as admin."""
        return httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.settings.http_port}",
            auth=("admin", ADMIN_PASSWORD),
            timeout=60,
        )


async def ready(port: int) -> bool:
    async with httpx.AsyncClient(timeout=2) as client:
        try:
            return (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
        except httpx.HTTPError:
            return False


@contextlib.asynccontextmanager
async def relay_processes_running(settings: Settings, count: int) -> AsyncIterator[RelayProcesses]:
    """``count`` relay processes on ``settings.ocpp_port``, each ready (``/readyz`` 200 on
    its metrics port); stopped with SIGTERM when the block ends."""
    settings = settings.model_copy(
        update={"relay_processes": count, "metrics_port": free_port_pair()}
    )
    assert count <= 2, "free_port_pair() reserves two metrics ports"
    relays = plan_relays(settings, settings_env(settings))
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(supervise(relay.name, relay.env, stop, command="relay"))
        for relay in relays
    ]
    try:
        for relay in relays:
            # Processes start slowly on a busy machine; /readyz says nothing before it binds.
            await eventually(lambda port=relay.metrics_port: ready(port), seconds=60, every=0.1)
        yield RelayProcesses(settings, relays)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
