"""Legs as the relay's own handshakes open them, face to face with websockets' peers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve

from oye_relay.legs import NO_LIMIT, WebSocketLeg
from oye_relay.server_handshake import ServerHandshake, UpgradeRequest, negotiate_extensions
from oye_relay.upstream_handshake import open_leg

#: Kernel buffers of the linked sockets: loopback would otherwise take many megabytes
#: before pushing back.
SMALL_BUFFER = 4096


@asynccontextmanager
async def server_leg(
    *, max_size: int = NO_LIMIT, compression: str | None = None
) -> AsyncIterator[tuple[WebSocketLeg, ClientConnection]]:
    """A charger's leg as the relay's handshake accepts it, and the charger's end
    (websockets' client, which limits no message size), with small kernel buffers."""
    loop = asyncio.get_running_loop()
    legs: asyncio.Queue[WebSocketLeg] = asyncio.Queue()

    async def accept(shake: ServerHandshake, request: UpgradeRequest) -> None:
        leg = shake.accept(request, None, negotiate_extensions(request.headers))
        assert leg is not None
        leg.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER
        )
        await legs.put(leg)

    shaking: set[ServerHandshake] = set()
    server = await loop.create_server(
        lambda: ServerHandshake(accept, 5.0, max_size, shaking), "127.0.0.1", 0
    )
    try:
        port = server.sockets[0].getsockname()[1]
        sock = socket.socket()
        # Before connect, so the window it advertises stays small.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        async with connect(
            f"ws://127.0.0.1:{port}/ocpp/CP-1", sock=sock, max_size=None, compression=compression
        ) as client:
            yield await legs.get(), client
    finally:
        server.close()


@asynccontextmanager
async def client_leg(
    *, max_size: int = NO_LIMIT, **server_options: object
) -> AsyncIterator[tuple[WebSocketLeg, ServerConnection]]:
    """A CSMS leg as the relay's upstream handshake opens it, and the CSMS's end
    (websockets' server: no size limit, no compression unless ``server_options`` say)."""
    options: dict[str, object] = {"max_size": None, "compression": None} | server_options
    async with csms(**options) as (url, accepted):
        leg = await open_to(url, max_size=max_size)
        try:
            yield leg, await accepted.get()
        finally:
            await leg.close()


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
