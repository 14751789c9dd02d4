"""Both ends of one real WebSocket on loopback, for tests of what the relay does per socket."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve


@asynccontextmanager
async def linked(
    create_connection: type[ServerConnection] | None = None, **server_options: Any
) -> AsyncIterator[tuple[ServerConnection, ClientConnection]]:
    """A server-side and a client-side connection, with small kernel buffers (loopback
    would otherwise take many megabytes before pushing back). Neither limits the size
    of a message unless ``server_options`` say so for the server."""
    accepted: asyncio.Queue[ServerConnection] = asyncio.Queue()
    closed = asyncio.Event()

    async def handler(connection: ServerConnection) -> None:
        await accepted.put(connection)
        await closed.wait()

    options: dict[str, Any] = {"max_size": None, "compression": None}
    async with serve(
        handler,
        "127.0.0.1",
        0,
        create_connection=create_connection,
        **(options | server_options),
    ) as server:
        port = server.sockets[0].getsockname()[1]
        sock = socket.socket()
        # Before connect, so the window it advertises stays small.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        async with connect(f"ws://127.0.0.1:{port}", sock=sock, **options) as client:
            connection = await accepted.get()
            connection.transport.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_SNDBUF, 4096
            )
            try:
                yield connection, client
            finally:
                closed.set()
