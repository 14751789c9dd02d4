"""The upstream's opening handshake (RFC 6455 §4.1), done by the relay itself.

websockets' client made, per connect, a connection object, its Sans-I/O protocol with a
generator-driven parser, a task-backed timeout and the handshake's request and response
objects, all let go once the relay's leg took the socket: in a storm of chargers a large
share of the relay's CPU (docs/PERFORMANCE.md, "Connection storms"). Here the request is
written as bytes and the answer read by a small asyncio protocol; on a valid 101 it hands
the socket to a :class:`~oye_relay.legs.WebSocketLeg` at once. The header grammar, the
accept key and permessage-deflate are websockets' own functions and extension objects,
so the checks are those websockets' client made.
"""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import cast
from urllib.parse import quote

from websockets.datastructures import Headers
from websockets.exceptions import InvalidHandshake, NegotiationError
from websockets.extensions import Extension
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.headers import (
    build_extension,
    parse_connection,
    parse_extension,
    parse_subprotocol,
    parse_upgrade,
)
from websockets.uri import parse_uri
from websockets.utils import accept_key

from oye_relay.http_head import END, MAX_HEAD_BYTES, BadHead, join_head, split_head
from oye_relay.legs import WebSocketLeg, leg_on

#: The permessage-deflate offer websockets' client makes by default (memLevel 5).
_DEFLATE = ClientPerMessageDeflateFactory(compress_settings={"memLevel": 5})
_DEFLATE_OFFER = build_extension([(_DEFLATE.name, _DEFLATE.get_request_params())])


class UpstreamRefused(Exception):
    """The CSMS answered the handshake with an HTTP status other than 101."""

    def __init__(self, status: int, headers: Headers) -> None:
        super().__init__(f"server rejected WebSocket connection: HTTP {status}")
        self.status = status
        #: The answer's headers (some are passed back to the charger).
        self.headers = headers

    @property
    def is_final(self) -> bool:
        """A 4xx says no to this charger; a 5xx is a CSMS in trouble, worth retrying."""
        return 400 <= self.status < 500


@dataclass(frozen=True, slots=True)
class Target:
    """Where a CSMS base URL points, parsed once."""

    host: str
    port: int
    secure: bool
    #: The request target's path, without a trailing slash; the charger's id follows.
    path: str
    #: The ``Host`` header (the port only when it is not the scheme's default).
    host_header: str


@cache
def target_of(base_url: str) -> Target:
    uri = parse_uri(base_url)
    host = f"[{uri.host}]" if ":" in uri.host else uri.host
    default_port = 443 if uri.secure else 80
    return Target(
        host=uri.host,
        port=uri.port,
        secure=uri.secure,
        path=uri.path.rstrip("/"),
        host_header=host if uri.port == default_port else f"{host}:{uri.port}",
    )


def handshake_request(
    target: Target,
    charge_point_id: str,
    key: str,
    *,
    subprotocols: Sequence[str],
    authorization: str | None,
    user_agent: str | None,
) -> bytes:
    lines = [
        f"GET {target.path}/{quote(charge_point_id, safe='')} HTTP/1.1",
        f"Host: {target.host_header}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        f"Sec-WebSocket-Extensions: {_DEFLATE_OFFER}",
    ]
    if subprotocols:
        lines.append(f"Sec-WebSocket-Protocol: {', '.join(subprotocols)}")
    if authorization:
        lines.append(f"Authorization: {authorization}")
    if user_agent:
        lines.append(f"User-Agent: {user_agent}")
    try:
        return join_head(lines)
    except BadHead as exc:  # the charger's headers passed an HTTP parser: never seen
        raise InvalidHandshake(str(exc)) from exc


def parse_head(head: bytes) -> tuple[int, Headers]:
    """The status and headers of a response head (without its blank line)."""
    try:
        status_line, headers = split_head(head)
    except BadHead as exc:
        raise InvalidHandshake(str(exc)) from exc
    version, _, rest = status_line.partition(" ")
    code = rest[:3]
    if version != "HTTP/1.1" or len(code) != 3 or not code.isdigit() or rest[3:4] not in ("", " "):
        raise InvalidHandshake(f"invalid HTTP status line: {status_line[:100]!r}")
    return int(code), headers


def check_response(
    headers: Headers, key: str, offered: Sequence[str]
) -> tuple[str | None, list[Extension]]:
    """The subprotocol and extensions of a 101 answer, as websockets' client checks them."""
    connection = [o for v in headers.get_all("Connection") for o in parse_connection(v)]
    if not any(option.lower() == "upgrade" for option in connection):
        raise InvalidHandshake(f"invalid Connection header: {', '.join(connection)!r}")
    upgrade = [p for v in headers.get_all("Upgrade") for p in parse_upgrade(v)]
    if not (len(upgrade) == 1 and upgrade[0].lower() == "websocket"):
        raise InvalidHandshake(f"invalid Upgrade header: {', '.join(upgrade)!r}")
    accepts = headers.get_all("Sec-WebSocket-Accept")
    if accepts != [accept_key(key)]:
        raise InvalidHandshake(f"invalid Sec-WebSocket-Accept header: {accepts!r}")

    extensions: list[Extension] = []
    for value in headers.get_all("Sec-WebSocket-Extensions"):
        for name, params in parse_extension(value):
            if name != _DEFLATE.name:
                raise InvalidHandshake(f"extension not offered: {name}")
            try:
                extensions.append(_DEFLATE.process_response_params(params, extensions))
            except NegotiationError as exc:
                raise InvalidHandshake(f"unsupported extension: {exc}") from exc

    chosen = [p for v in headers.get_all("Sec-WebSocket-Protocol") for p in parse_subprotocol(v)]
    if len(chosen) > 1:
        raise InvalidHandshake(f"several subprotocols chosen: {', '.join(chosen)}")
    subprotocol = chosen[0] if chosen else None
    if subprotocol is not None and subprotocol not in offered:
        raise InvalidHandshake(f"subprotocol not offered: {subprotocol}")
    return subprotocol, extensions


class ClientHandshake(asyncio.Protocol):
    """Writes the request once connected, reads the answer, hands over on a 101."""

    def __init__(self, request: bytes, key: str, offered: Sequence[str], max_size: int) -> None:
        self.request = request
        self.key = key
        self.offered = offered
        self.max_size = max_size
        self.opened: asyncio.Future[WebSocketLeg] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self._received = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass of it
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if self.opened.done():
            return
        self._received += data
        end = self._received.find(END)
        if end < 0:
            if len(self._received) > MAX_HEAD_BYTES:
                self._fail(InvalidHandshake("response head too long"))
            return
        try:
            status, headers = parse_head(bytes(self._received[:end]))
            if status != 101:
                raise UpstreamRefused(status, headers)
            subprotocol, extensions = check_response(headers, self.key, self.offered)
        except (InvalidHandshake, UpstreamRefused) as exc:
            self._fail(exc)
            return
        assert self.transport is not None
        leg = leg_on(
            self.transport,
            client=True,
            subprotocol=subprotocol,
            max_size=self.max_size,
            extensions=extensions,
            early=bytes(self._received[end + 4 :]),  # frames sent right behind the 101
        )
        self.opened.set_result(leg)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(
                exc or ConnectionResetError("connection closed during the handshake")
            )

    def _fail(self, exc: Exception) -> None:
        self.opened.set_exception(exc)
        assert self.transport is not None
        self.transport.close()

    def abandon(self) -> None:
        """The caller gave up (a timeout, a cancel), perhaps as the 101 came: the socket
        goes, whoever's protocol it has."""
        if self.transport is not None:
            self.transport.abort()


async def open_leg(
    base_url: str,
    charge_point_id: str,
    *,
    ssl_context: ssl.SSLContext | None,
    open_timeout: float,
    max_size: int,
    subprotocols: Sequence[str],
    authorization: str | None,
    user_agent: str | None,
) -> WebSocketLeg:
    """An open leg to ``base_url/{id}``; raises :class:`UpstreamRefused` for a non-101
    answer, :class:`InvalidHandshake` for an invalid one, ``OSError``, ``ssl.SSLError``
    or ``TimeoutError`` when the CSMS cannot be reached."""
    target = target_of(base_url)
    if target.secure and ssl_context is None:
        ssl_context = ssl.create_default_context()
    key = base64.b64encode(os.urandom(16)).decode()
    request = handshake_request(
        target,
        charge_point_id,
        key,
        subprotocols=subprotocols,
        authorization=authorization,
        user_agent=user_agent,
    )
    handshake: ClientHandshake | None = None

    def made() -> ClientHandshake:
        nonlocal handshake
        handshake = ClientHandshake(request, key, subprotocols, max_size)
        return handshake

    loop = asyncio.get_running_loop()
    leg = None
    try:
        async with asyncio.timeout(open_timeout):
            await loop.create_connection(
                made,
                target.host,
                target.port,
                ssl=ssl_context if target.secure else None,
                server_hostname=target.host if target.secure else None,
            )
            assert handshake is not None
            leg = await handshake.opened
    finally:
        if leg is None and handshake is not None:  # failed, timed out or cancelled
            handshake.abandon()
    return leg
