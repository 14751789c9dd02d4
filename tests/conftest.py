"""Fixtures shared by every tier: a real nats-server per test, settings that point at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
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


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
