"""The charger's opening handshake (RFC 6455 §4.2), done by the relay itself.

websockets' server made, per charger, a connection object, its Sans-I/O protocol with a
generator-driven parser, a task for the handshake and one for the handler, and the
request and response objects, all let go once the relay's leg took the socket: in a
storm of chargers the largest share of the relay's CPU (docs/PERFORMANCE.md, "Connection
storms"). Here a small asyncio protocol reads the request head, checks it as websockets'
server did (its header parsers, accept key and permessage-deflate factory), and hands it
to the relay's admission (one task, only while the relay decides; a charger that leaves
meanwhile cancels it); the answer is written as bytes, and on a 101 the socket becomes a
:class:`~oye_relay.legs.WebSocketLeg` at once.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, cast

from websockets.datastructures import Headers
from websockets.exceptions import InvalidHandshake, NegotiationError
from websockets.extensions import Extension
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.headers import build_extension, parse_connection, parse_extension, parse_upgrade
from websockets.utils import accept_key

from oye_relay.http_head import END, MAX_HEAD_BYTES, BadHead, join_head, split_head
from oye_relay.legs import WebSocketLeg, leg_on

#: The permessage-deflate websockets' server accepts by default (window 12, memLevel 5).
_DEFLATE = ServerPerMessageDeflateFactory(
    server_max_window_bits=12, client_max_window_bits=12, compress_settings={"memLevel": 5}
)

#: Headers the relay reads one value of (websockets' ``Headers.get`` raises on several).
SINGLE_HEADERS = ("Authorization", "User-Agent")

BROWSER_HINT = (
    "\n\nYou cannot access a WebSocket server directly with a browser. "
    "You need a WebSocket client.\n"
)


@dataclass(slots=True)
class Answer:
    """An HTTP answer other than 101: a refusal, with text for the charger's log."""

    status: int
    text: str
    headers: dict[str, str] = field(default_factory=dict)


class BadRequest(Exception):
    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.text)
        self.answer = answer


@dataclass(slots=True)
class UpgradeRequest:
    """A valid WebSocket upgrade request: what the relay decides on."""

    #: The request target, percent-decoding left to the caller (as websockets' ``path``).
    path: str
    headers: Headers
    key: str


def _failed(status: int, reason: str) -> BadRequest:
    return BadRequest(Answer(status, f"Failed to open a WebSocket connection: {reason}.\n"))


def _upgrade_required(reason: str) -> BadRequest:
    text = f"Failed to open a WebSocket connection: {reason}.{BROWSER_HINT}"
    return BadRequest(Answer(426, text, {"Upgrade": "websocket"}))


def parse_request(head: bytes) -> UpgradeRequest:
    """The request head (without its blank line), checked as websockets' server checks
    it; raises :class:`BadRequest` with the answer websockets would give."""
    try:
        request_line, headers = split_head(head)
    except BadHead as exc:
        raise _failed(400, str(exc)) from exc
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[1].startswith("/") or not request_line.isascii():
        raise _failed(400, "did not receive a valid HTTP request")
    method, target, version = parts
    if version != "HTTP/1.1":
        raise BadRequest(Answer(505, f"unsupported protocol; expected HTTP/1.1: {version[:20]}\n"))
    if method != "GET":
        raise BadRequest(Answer(405, f"unsupported HTTP method; expected GET; got {method[:20]}\n"))
    try:
        connection = [o for v in headers.get_all("Connection") for o in parse_connection(v)]
        upgrade = [p for v in headers.get_all("Upgrade") for p in parse_upgrade(v)]
    except InvalidHandshake as exc:
        raise _failed(400, str(exc)) from exc
    if not connection:
        raise _upgrade_required("missing Connection header")
    if not any(option.lower() == "upgrade" for option in connection):
        raise _upgrade_required(f"invalid Connection header: {', '.join(connection)}")
    if not upgrade:
        raise _upgrade_required("missing Upgrade header")
    if not (len(upgrade) == 1 and upgrade[0].lower() == "websocket"):
        raise _upgrade_required(f"invalid Upgrade header: {', '.join(upgrade)}")
    for name in SINGLE_HEADERS:
        if len(headers.get_all(name)) > 1:
            raise _failed(400, f"invalid {name} header: multiple values")
    return UpgradeRequest(path=target, headers=headers, key=_key(headers))


def _key(headers: Headers) -> str:
    keys = headers.get_all("Sec-WebSocket-Key")
    if not keys:
        raise _failed(400, "missing Sec-WebSocket-Key header")
    if len(keys) > 1:
        raise _failed(400, "invalid Sec-WebSocket-Key header: multiple values")
    try:
        raw_key = base64.b64decode(keys[0].encode(), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raw_key = b""
    if len(raw_key) != 16:
        raise _failed(400, f"invalid Sec-WebSocket-Key header: {keys[0][:40]}")
    versions = headers.get_all("Sec-WebSocket-Version")
    if versions != ["13"]:
        raise _failed(400, f"invalid Sec-WebSocket-Version header: {', '.join(versions)[:40]}")
    return keys[0]


def negotiate_extensions(headers: Headers) -> tuple[str | None, list[Extension]]:
    """permessage-deflate, if offered in a form websockets' server accepts: the response
    header and the extension objects (as its ``process_extensions``)."""
    accepted: list[Extension] = []
    answered = []
    for value in headers.get_all("Sec-WebSocket-Extensions"):
        try:
            offers = parse_extension(value)
        except InvalidHandshake as exc:
            raise _failed(400, str(exc)) from exc
        for name, params in offers:
            if name != _DEFLATE.name or accepted:
                continue
            try:
                response_params, extension = _DEFLATE.process_request_params(params, accepted)
            except NegotiationError:
                continue
            answered.append((name, response_params))
            accepted.append(extension)
    return (build_extension(answered) if answered else None), accepted


_date_second = -1
_date = ""


def http_date() -> str:
    """The ``Date`` header, formatted once a second."""
    global _date_second, _date
    now = int(time.time())
    if now != _date_second:
        _date_second, _date = now, email.utils.formatdate(now, usegmt=True)
    return _date


def switching_protocols(key: str, subprotocol: str | None, extensions: str | None) -> bytes:
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        f"Date: {http_date()}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept_key(key)}",
    ]
    if extensions:
        lines.append(f"Sec-WebSocket-Extensions: {extensions}")
    if subprotocol:
        lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
    return join_head(lines)


def refusal(answer: Answer) -> bytes:
    body = answer.text.encode()
    try:
        phrase = HTTPStatus(answer.status).phrase
    except ValueError:
        phrase = "Refused"
    lines = [
        f"HTTP/1.1 {answer.status} {phrase}",
        f"Date: {http_date()}",
        "Connection: close",
        f"Content-Length: {len(body)}",
        "Content-Type: text/plain; charset=utf-8",
        *(f"{name}: {value}" for name, value in answer.headers.items()),
    ]
    return join_head(lines) + body


#: Every decision under way (see ServerHandshake.data_received).
_decisions: set[asyncio.Task[None]] = set()

Decide = Callable[["ServerHandshake", UpgradeRequest], Coroutine[Any, Any, None]]


class ServerHandshake(asyncio.Protocol):
    """One accepted socket until its handshake is answered (see the module)."""

    def __init__(
        self, decide: Decide, timeout: float, max_size: int, shaking: set[ServerHandshake]
    ) -> None:
        self._decide = decide
        self._timeout = timeout
        self.max_size = max_size
        self._shaking = shaking
        self.transport: asyncio.Transport | None = None
        self._received = bytearray()
        self._timer: asyncio.TimerHandle | None = None
        self._deciding: asyncio.Task[None] | None = None
        self.answered = False

    @property
    def remote_address(self) -> Any:
        return self.transport.get_extra_info("peername") if self.transport else None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass of it
        self._shaking.add(self)
        self._timer = asyncio.get_running_loop().call_later(self._timeout, self.abort)

    def data_received(self, data: bytes) -> None:
        self._received += data
        if self._deciding is not None:
            # Frames sent before the 101 are kept for the leg, a few only: reading goes
            # on meanwhile so that a charger that leaves is noticed (the decision ends).
            if len(self._received) > MAX_HEAD_BYTES:
                self.abort()
            return
        end = self._received.find(END)
        if end < 0:
            if len(self._received) > MAX_HEAD_BYTES:
                self.refuse(_failed(400, "did not receive a valid HTTP request").answer)
            return
        try:
            request = parse_request(bytes(self._received[:end]))
        except BadRequest as bad:
            self.refuse(bad.answer)
            return
        del self._received[: end + 4]
        assert self.transport is not None
        self._deciding = asyncio.create_task(self._decide(self, request))
        # The decision goes on as the session's start after the 101, when nothing holds
        # this protocol any more: keep the task until it is done (asyncio holds it weakly).
        _decisions.add(self._deciding)
        self._deciding.add_done_callback(_decisions.discard)

    def connection_lost(self, exc: Exception | None) -> None:
        self._end()
        if self._deciding is not None and not self._deciding.done() and not self.answered:
            self._deciding.cancel()  # the charger left while the relay decided

    def refuse(self, answer: Answer) -> None:
        """Answer with an HTTP error and close."""
        if self.answered or self.transport is None or self.transport.is_closing():
            return
        self.answered = True
        self._end()
        try:
            self.transport.write(refusal(answer))
        finally:
            self.transport.close()

    def accept(
        self,
        request: UpgradeRequest,
        subprotocol: str | None,
        extensions: tuple[str | None, list[Extension]],
    ) -> WebSocketLeg | None:
        """Answer 101; the socket is a leg from now on (None: the charger is gone)."""
        assert self.transport is not None
        assert not self.answered
        if self.transport.is_closing():
            return None
        self.answered = True
        self._end()
        header, objects = extensions
        self.transport.write(switching_protocols(request.key, subprotocol, header))
        # What the charger sent before it had the 101 is read by the leg.
        early, self._received = bytes(self._received), bytearray()
        return leg_on(
            self.transport,
            client=False,
            subprotocol=subprotocol,
            max_size=self.max_size,
            extensions=objects,
            early=early,
        )

    def abort(self) -> None:
        """Too slow, or the relay is stopping: the socket goes, unanswered."""
        if not self.answered and self.transport is not None:
            self.transport.abort()

    def _end(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._shaking.discard(self)
