"""The HTTP ports under uvicorn (the API, a service's metrics): a request head that never
finishes gets 408, one address beyond OYE_MAX_CONNECTIONS_PER_ADDRESS gets 429, and other
clients are served meanwhile. Real sockets, the real servers."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import statistics
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from oye_relay.main import run as run_relay
from oye_shared.http_guard import TOO_MANY, TOO_SLOW
from oye_shared.settings import Settings
from tests.integration.api_support import with_admin
from tests.support.relay import eventually, service_running
from tests.support.stack import api_running

pytestmark = pytest.mark.integration

HEAD = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
#: Long enough for any of these servers to give up on a head (the settings say 0.5-1 s).
GIVE_UP = 30
HALF_A_HEAD = b"GET /api/config HTTP/1.1\r\nHost: x\r\n"  # ... and never the blank line


@contextlib.asynccontextmanager
async def raw(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def answer_to(port: int, request: bytes) -> bytes:
    """What the server sends back for ``request``, to the end of the connection."""
    async with raw(port) as (reader, writer):
        writer.write(request)
        return await reader.read()


async def health_round_trip(http: httpx.AsyncClient, path: str = "/health") -> float:
    began = time.perf_counter()
    response = await http.get(path)
    assert response.status_code == 200
    return time.perf_counter() - began


async def test_request_heads_that_never_finish_get_408_while_others_are_served(
    settings: Settings,
) -> None:
    """20 connections send half a request head and never the rest: each gets 408 and is
    closed once OYE_HANDSHAKE_TIMEOUT has passed; /health answers as fast meanwhile."""
    quick = with_admin(settings, handshake_timeout=1.0)
    base = f"http://127.0.0.1:{quick.http_port}"
    async with api_running(quick), httpx.AsyncClient(base_url=base) as http:
        before = statistics.median([await health_round_trip(http) for _ in range(10)])
        async with contextlib.AsyncExitStack() as stalled:
            sockets = [await stalled.enter_async_context(raw(quick.http_port)) for _ in range(20)]
            for _, writer in sockets:
                writer.write(HALF_A_HEAD)
            answers = asyncio.gather(*(reader.read() for reader, _ in sockets))
            during = []
            async with asyncio.timeout(GIVE_UP):
                while not answers.done():
                    during.append(await health_round_trip(http))
    assert await answers == [TOO_SLOW] * 20
    assert TOO_SLOW.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert during
    assert statistics.median(during) < max(20 * before, 0.05)


async def test_one_address_beyond_the_limit_gets_429_until_one_of_its_connections_closes(
    settings: Settings,
) -> None:
    """3 allowed: three idle connections from 127.0.0.1 hold the API's port for that
    address and a fourth request gets 429, never reaching the app; once one of the three
    closes, requests are served again."""
    limited = with_admin(settings, max_connections_per_address=3, handshake_timeout=30.0)
    async with api_running(limited), contextlib.AsyncExitStack() as idle:
        held = [await idle.enter_async_context(raw(limited.http_port)) for _ in range(3)]
        assert await answer_to(limited.http_port, HEAD) == TOO_MANY
        assert TOO_MANY.startswith(b"HTTP/1.1 429 Too Many Requests\r\n")
        held[0][1].close()

        async def served() -> bool:
            return (await answer_to(limited.http_port, HEAD)).startswith(b"HTTP/1.1 200 ")

        await eventually(served)  # the server notices the close in its own time


async def test_a_services_metrics_port_has_the_same_limits(settings: Settings) -> None:
    """The relay's /metrics, /livez and /readyz: 408 for a head that never finishes, and
    /livez answered meanwhile."""
    quick = settings.model_copy(update={"handshake_timeout": 0.5})
    port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    run = functools.partial(run_relay, metrics_port=port)
    async with (
        service_running(run, quick),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port.result()}") as http,
    ):
        stalled = asyncio.create_task(answer_to(port.result(), HALF_A_HEAD))
        async with asyncio.timeout(GIVE_UP):
            while not stalled.done():
                await health_round_trip(http, "/livez")
    assert await stalled == TOO_SLOW
