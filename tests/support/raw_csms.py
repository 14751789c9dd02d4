"""A byte-level CSMS for tests that must see exactly what crossed the wire.

It answers every CALL with an empty CALLRESULT (or what ``answers`` says), records every
message with the connection it came on, and can drop or close connections on demand.
The OCPP-level CSMS built on the ``ocpp`` package is in ``tests/peers``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol


@dataclass
class Connected:
    connection: ServerConnection
    charge_point_id: str
    raw_path: str
    headers: dict[str, str]
    received: list[str | bytes] = field(default_factory=list)


class RawCsms:
    def __init__(
        self,
        *,
        subprotocols: tuple[str, ...] = ("ocpp1.6", "ocpp2.0.1", "ocpp2.1"),
        passwords: dict[str, str] | None = None,
        refuse: dict[str, int] | None = None,
        answer: Callable[[list[Any]], Any] | None = None,
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.subprotocols = subprotocols
        self.passwords = passwords
        self.refuse = refuse or {}
        self.answer = answer
        self.port = port
        self.ssl_context = ssl_context
        self.connections: list[Connected] = []
        self._changed = asyncio.Condition()
        self._server: Server | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    @property
    def wss(self) -> str:
        """The URL when serving TLS (``ssl_context``), by IP like :attr:`url`."""
        return f"wss://127.0.0.1:{self.port}/ocpp"

    async def start(self) -> RawCsms:
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            self.port,
            process_request=self._process_request,
            select_subprotocol=self._select,
            ssl=self.ssl_context,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Stop listening and drop every connection without a close frame (a crash)."""
        if self._server is None:
            return
        self._server.close(close_connections=False)
        for connected in self.connections:
            connected.connection.transport.abort()
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> RawCsms:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _select(self, connection: ServerConnection, offered: Any) -> Subprotocol | None:
        return next((Subprotocol(p) for p in offered if p in self.subprotocols), None)

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        cp = unquote(request.path.rsplit("/", 1)[-1])
        if cp in self.refuse:
            status = self.refuse[cp]
            return connection.respond(status, HTTPStatus(status).phrase + "\n")
        if self.passwords is not None:
            expected = base64.b64encode(f"{cp}:{self.passwords.get(cp)}".encode()).decode()
            if request.headers.get("Authorization") != f"Basic {expected}":
                response = connection.respond(401, "Unauthorized\n")
                response.headers["WWW-Authenticate"] = 'Basic realm="csms"'
                return response
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        request = connection.request
        assert request is not None
        connected = Connected(
            connection=connection,
            charge_point_id=unquote(request.path.rsplit("/", 1)[-1]),
            raw_path=request.path,
            headers=dict(request.headers.raw_items()),
        )
        async with self._changed:
            self.connections.append(connected)
            self._changed.notify_all()
        try:
            async for message in connection:
                async with self._changed:
                    connected.received.append(message)
                    self._changed.notify_all()
                await self._reply(connection, message)
        except ConnectionClosed:
            pass
        async with self._changed:
            self._changed.notify_all()

    async def _reply(self, connection: ServerConnection, message: str | bytes) -> None:
        try:
            frame = json.loads(message)
        except (ValueError, RecursionError):
            return
        if isinstance(frame, list) and len(frame) == 4 and frame[0] == 2:
            payload = self.answer(frame) if self.answer else {}
            await connection.send(json.dumps([3, frame[1], payload]))

    async def wait_connection(
        self, charge_point_id: str, index: int = 0, seconds: float = 10.0
    ) -> Connected:
        """The index-th connection this charger made."""
        async with asyncio.timeout(seconds), self._changed:
            await self._changed.wait_for(lambda: len(self._of(charge_point_id)) > index)
        return self._of(charge_point_id)[index]

    async def wait_received(
        self, connected: Connected, count: int, seconds: float = 10.0
    ) -> list[str | bytes]:
        async with asyncio.timeout(seconds), self._changed:
            await self._changed.wait_for(lambda: len(connected.received) >= count)
        return list(connected.received)

    def _of(self, charge_point_id: str) -> list[Connected]:
        return [c for c in self.connections if c.charge_point_id == charge_point_id]
