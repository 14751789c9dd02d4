"""A loopback TCP forwarder whose client-to-server direction can be held.

Between a service and its nats-server, it shows what the service wrote (``seen``) and
lets a test decide when the server gets it (``hold``, ``release``): the order of what a
service sends and what it waits for becomes observable without timing anything.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class TcpGate:
    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self._server: asyncio.Server | None = None
        self._held: list[tuple[asyncio.StreamWriter, bytearray]] | None = None
        #: Everything the clients wrote, in arrival order (all connections together).
        self.sent = bytearray()
        self._arrived = asyncio.Condition()
        self._pumps: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"nats://127.0.0.1:{port}"

    def hold(self) -> None:
        """From now on, what clients write is kept here, not forwarded."""
        self._held = []

    def release(self) -> None:
        """Forward what was held, in order, and everything from now on."""
        held, self._held = self._held, None
        for writer, data in held or ():
            writer.write(data)

    async def seen(self, pattern: bytes, after: int = 0) -> int:
        """Wait until a client has written ``pattern`` (at or after offset ``after`` of
        :attr:`sent`); the offset just past it."""
        async with self._arrived:
            await self._arrived.wait_for(lambda: self.sent.find(pattern, after) >= 0)
            return self.sent.find(pattern, after) + len(pattern)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        target_reader, target_writer = await asyncio.open_connection("127.0.0.1", self._target_port)
        self._writers += [writer, target_writer]
        for pump in (self._to_server(reader, target_writer), _pipe(target_reader, writer)):
            task = asyncio.create_task(pump)
            self._pumps.add(task)
            task.add_done_callback(self._pumps.discard)

    async def _to_server(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            async with self._arrived:
                self.sent += data
                self._arrived.notify_all()
            if self._held is not None:
                self._held.append((writer, bytearray(data)))
            else:
                writer.write(data)
        writer.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[TcpGate]:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        try:
            yield self
        finally:
            self._server.close()
            for task in list(self._pumps):
                task.cancel()
            await asyncio.gather(*self._pumps, return_exceptions=True)
            for writer in self._writers:
                writer.close()
            await self._server.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
    writer.close()
