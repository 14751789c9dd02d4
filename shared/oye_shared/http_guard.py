"""Per-address connection and request-head limits for an HTTP port served by uvicorn.

uvicorn bounds neither: a client that sends half a request keeps its connection for as
long as it likes (uvicorn's keep-alive timeout starts only after a response), and one
address may open as many connections as the process has file descriptors. The API's port
and the metrics ports get the relay's limits for chargers (``OYE_MAX_CONNECTIONS_PER_ADDRESS``,
``OYE_HANDSHAKE_TIMEOUT``) through :func:`guarded_http`, a wrapper around the protocol class
uvicorn would use:

* A connection from an address that already has ``max_per_address`` open is answered
  ``429 Too Many Requests`` once its request head is in (answering before reading it would
  have the client see a reset instead), and closed; it never reaches the app.
* A connection whose first request head (up to the blank line) is not complete within
  ``head_timeout`` seconds is answered ``408 Request Timeout`` and closed. After that,
  uvicorn's keep-alive timeout bounds an idle connection.

A WebSocket upgrade (the dashboard's live feed) stays counted until it closes: the wrapped
protocol sees a transport whose ``set_protocol`` swaps the protocol inside the wrapper.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

from uvicorn.protocols.http.auto import AutoHTTPProtocol

from oye_shared.settings import Settings

#: The end of a request head: a blank line (h11 also takes bare line feeds).
_HEAD_END = re.compile(rb"\n\r?\n")


@dataclass
class ConnectionLimits:
    """The limits of one port, and the connections open on it per remote address."""

    max_per_address: int
    head_timeout: float
    open: Counter[str] = field(default_factory=Counter)

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(settings.max_connections_per_address, settings.handshake_timeout)


def answer(status: int, reason: str, detail: str) -> bytes:
    """A complete HTTP/1.1 response that closes the connection, with a JSON ``detail``."""
    body = json.dumps({"detail": detail}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nx-content-type-options: nosniff\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode() + body


TOO_MANY = answer(429, "Too Many Requests", "too many connections from this address")
TOO_SLOW = answer(408, "Request Timeout", "the request head did not arrive in time")


class _Transport:
    """The real transport, except that the protocol it serves is the wrapper's inner one."""

    def __init__(self, transport: asyncio.Transport, guard: GuardedProtocol) -> None:
        self._transport = transport
        self._guard = guard

    def write(self, data: bytes) -> None:
        self._guard.answering()  # whatever the head looked like, the server has it
        self._transport.write(data)

    def writelines(self, data: Any) -> None:
        self._guard.answering()
        self._transport.writelines(data)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._guard.inner = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._guard.inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GuardedProtocol(asyncio.Protocol):
    """See the module's docstring; made for one port by :func:`guarded_http`."""

    limits: ClassVar[ConnectionLimits]
    inner_class: ClassVar[type[asyncio.Protocol]]

    def __init__(self, **kwargs: Any) -> None:
        self.inner: asyncio.BaseProtocol = self.inner_class(**kwargs)
        self._transport: asyncio.Transport | None = None
        self._address: str | None = None  # counted in limits.open while set
        self._refused = False
        self._deadline: asyncio.TimerHandle | None = None
        self._tail = b""  # the last bytes read of the head (a blank line may be split)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if peer else ""
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(self.limits.head_timeout, self._too_slow)
        if self.limits.open[address] >= self.limits.max_per_address:
            self._refused = True  # answered once its head is in; nothing reaches the app
            return
        self.limits.open[address] += 1
        self._address = address
        self.inner.connection_made(cast(asyncio.Transport, _Transport(self._transport, self)))

    def data_received(self, data: bytes) -> None:
        if self._deadline is not None:
            seen = self._tail + data
            if _HEAD_END.search(seen):
                self.answering()
            else:
                self._tail = seen[-2:]
        if self._refused:
            if self._deadline is None and self._transport is not None:
                self._close_with(TOO_MANY)
            return
        cast(asyncio.Protocol, self.inner).data_received(data)

    def eof_received(self) -> bool | None:
        if self._refused:
            return None
        return cast(asyncio.Protocol, self.inner).eof_received()

    def pause_writing(self) -> None:
        if not self._refused:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if not self._refused:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.answering()
        address, self._address = self._address, None
        if address is None:
            return
        self.limits.open[address] -= 1
        if self.limits.open[address] <= 0:
            del self.limits.open[address]
        self.inner.connection_lost(exc)

    def answering(self) -> None:
        """The request head is in (or the server answers already): no 408 any more."""
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        self._close_with(b"" if self._refused else TOO_SLOW)

    def _close_with(self, response: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if response:
            transport.write(response)
        transport.close()


def guarded_http(
    limits: ConnectionLimits, inner: type[asyncio.Protocol] = AutoHTTPProtocol
) -> type[asyncio.Protocol]:
    """The protocol class for ``uvicorn.Config(http=...)`` of one port."""

    class Guarded(GuardedProtocol):
        pass

    Guarded.limits = limits
    Guarded.inner_class = inner
    return Guarded
