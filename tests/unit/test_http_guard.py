"""The per-address and request-head limits around uvicorn's protocol, with a recording
protocol inside and a recording transport outside (no sockets)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from oye_shared.http_guard import TOO_MANY, TOO_SLOW, ConnectionLimits, guarded_http

pytestmark = pytest.mark.unit

HEAD = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"


class Transport(asyncio.Transport):
    def __init__(self, address: str = "192.0.2.1") -> None:
        super().__init__()
        self.address = address
        self.written = bytearray()
        self.closed = asyncio.Event()
        self.protocol: asyncio.BaseProtocol | None = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return (self.address, 40000) if name == "peername" else default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed.is_set()

    def close(self) -> None:
        self.closed.set()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol


class Inner(asyncio.Protocol):
    """What uvicorn's protocol would see."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.transport: asyncio.Transport | None = None
        self.data = bytearray()
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.data += data

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True


def connected(limits: ConnectionLimits, address: str = "192.0.2.1") -> tuple[Any, Transport]:
    protocol: Any = guarded_http(limits, Inner)  # uvicorn calls it with keywords
    guard = protocol(config="c")
    transport = Transport(address)
    guard.connection_made(transport)
    return guard, transport


async def test_the_inner_protocol_gets_everything_with_uvicorns_arguments() -> None:
    limits = ConnectionLimits(max_per_address=10, head_timeout=60)
    guard, _ = connected(limits)
    guard.data_received(HEAD[:10])
    guard.data_received(HEAD[10:])
    assert guard.inner.kwargs == {"config": "c"}
    assert guard.inner.data == HEAD
    assert limits.open == {"192.0.2.1": 1}
    guard.connection_lost(None)
    assert guard.inner.lost
    assert limits.open == {}


async def test_a_head_split_anywhere_or_ended_by_bare_line_feeds_stops_the_clock() -> None:
    for head in (HEAD, b"GET / HTTP/1.1\nHost: x\n\n"):
        for cut in range(1, len(head)):
            guard, _ = connected(ConnectionLimits(max_per_address=10, head_timeout=60))
            deadline = guard._deadline
            guard.data_received(head[:cut])
            assert not deadline.cancelled()
            guard.data_received(head[cut:])
            assert deadline.cancelled(), (head, cut)


async def test_a_head_that_does_not_arrive_in_time_gets_408() -> None:
    guard, transport = connected(ConnectionLimits(max_per_address=10, head_timeout=0.01))
    guard.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the rest
    await transport.closed.wait()
    assert bytes(transport.written) == TOO_SLOW
    assert transport.written.startswith(b"HTTP/1.1 408 Request Timeout\r\n")


async def test_once_the_server_answers_there_is_no_408() -> None:
    """Whatever the head looked like to us, a response means the server took it."""
    guard, transport = connected(ConnectionLimits(max_per_address=10, head_timeout=60))
    deadline = guard._deadline
    guard.inner.transport.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    assert deadline.cancelled()
    assert transport.written == b"HTTP/1.1 400 Bad Request\r\n\r\n"


async def test_beyond_the_limit_an_address_gets_429_once_its_head_is_in() -> None:
    limits = ConnectionLimits(max_per_address=2, head_timeout=60)
    first, _ = connected(limits)
    connected(limits)
    connected(limits, "192.0.2.2")
    refused, transport = connected(limits)
    refused.data_received(HEAD[:5])
    assert not transport.written
    refused.data_received(HEAD[5:])
    assert bytes(transport.written) == TOO_MANY
    assert transport.closed.is_set()
    assert refused.inner.transport is None  # the app never saw it
    assert not refused.inner.data
    refused.connection_lost(None)
    assert limits.open == {"192.0.2.1": 2, "192.0.2.2": 1}
    first.connection_lost(None)
    admitted, transport = connected(limits)
    admitted.data_received(HEAD)
    assert admitted.inner.data == HEAD
    assert not transport.written


async def test_an_upgraded_connection_stays_counted_and_its_new_protocol_gets_the_rest() -> None:
    limits = ConnectionLimits(max_per_address=10, head_timeout=60)
    guard, transport = connected(limits)
    seen_by_uvicorn = guard.inner.transport
    upgraded = Inner()
    seen_by_uvicorn.set_protocol(upgraded)  # what uvicorn does for a WebSocket
    assert transport.protocol is None  # the real transport still talks to the guard
    assert seen_by_uvicorn.get_protocol() is upgraded
    guard.data_received(b"websocket frames")
    assert upgraded.data == b"websocket frames"
    assert limits.open == {"192.0.2.1": 1}
    guard.connection_lost(None)
    assert upgraded.lost
    assert limits.open == {}
