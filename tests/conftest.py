"""Fixtures shared by every tier: a real nats-server per test, settings that point at it."""

from __future__ import annotations

import asyncio
import os
import random
import socket
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import nats
import pytest
import uvloop
from nats.aio.client import Client

from oye_cli.nats_server import NatsServer
from oye_shared.settings import Settings, load_settings


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A real nats-server with JetStream on a free port, its store in the test's temp dir."""
    with NatsServer(tmp_path / "nats") as server:
        yield server


@pytest.fixture
def settings(nats_server: NatsServer, tmp_path: Path) -> Settings:
    """Settings for one test: its own NATS, data dir, and free service ports."""
    return load_settings(
        nats_url=nats_server.url,
        data_dir=tmp_path / "data",
        bind_host="127.0.0.1",
        ocpp_port=free_port(),
        http_port=free_port(),
        metrics_port=0,
        logger_metrics_port=0,
        relay_id="relay-test",
        ping_interval=5.0,
        upstream_connect_timeout=2.0,
        upstream_backoff_max=0.5,
    )


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[Client]:
    """A plain NATS client for the test itself (to watch subjects, send requests)."""
    client = await nats.connect(nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    yield client
    await client.close()


#: Ports for our servers come from below Linux's ephemeral range (32768-60999), where
#: outgoing connections and port-0 binds (nats-server) take theirs; each xdist worker
#: has its own slice, so two workers never pick the same port.
PORT_RANGE = range(20_000, 32_000)


def free_port() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    size = len(PORT_RANGE) // max(workers, 1)
    first = PORT_RANGE.start + index * size
    start = random.randrange(size)
    for offset in range(size):
        port = first + (start + offset) % size
        if port in _HANDED_OUT:  # maybe not bound yet by whoever got it: a bind would succeed
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            _HANDED_OUT.append(port)
            return port
    raise RuntimeError("no free port left in this worker's range")


#: The ports this worker handed out lately: a test often asks for several before it
#: binds any, and a free port stays "free" until its owner binds it.
_HANDED_OUT: deque[int] = deque(maxlen=512)


#: The relay's socket-level tests run on both loops a service may run on
#: (OYE_EVENT_LOOP); the rest on uvloop, the services' default.
ON_BOTH_LOOPS = frozenset(
    (
        "test_flow.py",
        "test_keepalive.py",
        "test_leg_reader.py",
        "test_pending.py",
        "test_legs.py",
        "test_relay_wire.py",
    )
)


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    loops: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"uvloop": uvloop.new_event_loop}
    if item.path.name in ON_BOTH_LOOPS:
        loops["asyncio"] = asyncio.new_event_loop
    return loops
