"""Legs the relay's own upstream handshake opens, and a websockets server as their CSMS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from websockets.asyncio.server import ServerConnection, serve

from oye_relay.legs import WebSocketLeg
from oye_relay.upstream_handshake import open_leg


async def open_to(url: str, **options: object) -> WebSocketLeg:
    settings: dict[str, object] = {
        "ssl_context": None,
        "open_timeout": 5.0,
        "max_size": 2**20,
        "subprotocols": ["ocpp2.0.1", "ocpp1.6"],
        "authorization": None,
        "user_agent": None,
    }
    return await open_leg(url, "CP/1 ä", **(settings | options))  # type: ignore[arg-type]


@asynccontextmanager
async def csms(
    **options: object,
) -> AsyncIterator[tuple[str, asyncio.Queue[ServerConnection]]]:
    """A websockets server as the CSMS: its URL and the connections it accepted."""
    accepted: asyncio.Queue[ServerConnection] = asyncio.Queue()

    async def handler(connection: ServerConnection) -> None:
        await accepted.put(connection)
        await connection.wait_closed()

    async with serve(handler, "127.0.0.1", 0, **options) as server:  # type: ignore[arg-type]
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/ocpp/", accepted
