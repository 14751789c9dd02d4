"""A charger's two WebSocket legs once open, each one small asyncio protocol of ours.

websockets keeps, per open connection, its ``Connection`` and Sans-I/O protocol objects,
their parser's generators and reader, the handshake's request and response, and (on the
server) a task running the handler for the connection's whole life: about 8 KiB per
charger for its two legs (docs/PERFORMANCE.md, "Relay memory"). A :class:`WebSocketLeg`
is the transport's protocol once a handshake is answered 101 (the relay's own handshakes,
server_handshake.py and upstream_handshake.py, make one directly): frames are read and
written with :mod:`oye_relay.ws_codec`, and the rest of RFC 6455 a relay needs is here:
fragments, ping and pong, the closing handshake (with ``close_timeout``), and failing the
connection (1002, 1007, 1009) as websockets would. permessage-deflate, when negotiated,
is websockets' own extension object.

Secondary backends' legs are the same (their reader: :mod:`oye_relay.leg_reader`).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from websockets.exceptions import ConnectionClosed, PayloadTooBig, ProtocolError
from websockets.extensions import Extension
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import State
from websockets.typing import Data

from oye_relay import ws_codec

log = logging.getLogger(__name__)

Sink = Callable[[Data], None]

#: As websockets' ``MAX_FRAGMENTS``: more fragments than this in one message fail it.
MAX_FRAGMENTS = 1024
#: Messages kept for a sink not attached yet before reading pauses (websockets' max_queue).
MAX_QUEUED = 64

OPEN, CLOSING, CLOSED = State.OPEN, State.CLOSING, State.CLOSED
#: websockets' default, for the legs the relay's own handshakes open.
CLOSE_TIMEOUT = 10.0
#: ``max_size`` for no limit.
NO_LIMIT = 2**63


class Leg(Protocol):
    """What the relay needs of an open WebSocket (a :class:`WebSocketLeg`)."""

    @property
    def subprotocol(self) -> str | None: ...
    @property
    def state(self) -> State: ...
    @property
    def close_code(self) -> int | None: ...
    @property
    def close_reason(self) -> str | None: ...
    @property
    def close_received(self) -> bool: ...
    @property
    def paused(self) -> bool: ...
    @property
    def transport(self) -> Any: ...
    @property
    def remote_address(self) -> Any: ...

    def attach(self, sink: Sink) -> None: ...
    def notify_writable(self, listener: Callable[[], None]) -> None: ...
    def on_closed(self, callback: Callable[[], None]) -> None: ...
    def writable(self) -> bool: ...
    def write(self, message: str | bytes) -> None: ...
    async def send(self, message: str | bytes) -> None: ...
    async def close(self, code: int = 1000, reason: str = "") -> None: ...
    async def wait_closed(self) -> None: ...
    def keepalive_ping(self) -> None: ...
    def keepalive_answered(self) -> bool: ...
    def fail(self, code: int, reason: str) -> None: ...


class Sender(Protocol):
    """Anything a frame can be sent on: a leg, or a secondary backend's connection."""

    async def send(self, message: str) -> None: ...


def _ignore(message: Data) -> None:
    """The sink once a close frame came or the connection failed: nothing is delivered."""


def leg_on(
    transport: asyncio.Transport,
    *,
    client: bool,
    subprotocol: str | None,
    max_size: int,
    extensions: Sequence[Extension],
    early: bytes = b"",
) -> WebSocketLeg:
    """The transport's protocol from now on, a handshake just answered 101; ``early``:
    what the peer sent right behind its handshake, read with it."""
    leg = WebSocketLeg(
        transport,
        client=client,
        subprotocol=subprotocol,
        max_size=max_size,
        close_timeout=CLOSE_TIMEOUT,
        extensions=extensions,
    )
    transport.set_protocol(leg)
    if early:
        leg.data_received(early)
    return leg


async def wait_in(waiters: list[asyncio.Future[None]]) -> None:
    """Wait until :func:`release` resolves the future this adds to ``waiters`` (a plain
    future, not ``asyncio.shield``'s); a cancelled waiter takes only its own out."""
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    waiters.append(waiter)
    try:
        await waiter
    finally:
        if waiter in waiters:
            waiters.remove(waiter)


def release(waiters: list[asyncio.Future[None]] | None) -> None:
    """Wake every task in :func:`wait_in` on ``waiters``."""
    for waiter in waiters or ():
        if not waiter.done():
            waiter.set_result(None)


class WebSocketLeg(asyncio.Protocol):
    """An open WebSocket connection, after websockets' handshake (see the module)."""

    __slots__ = (
        "_client",
        "_close_rcvd",
        "_close_sent",
        "_close_timeout",
        "_close_timer",
        "_closed_waiters",
        "_drain_waiters",
        "_extensions",
        "_fragments",
        "_fragments_size",
        "_max_size",
        "_on_closed",
        "_on_writable",
        "_partial",
        "_ping",
        "_queued",
        "_sink",
        "paused",
        "state",
        "subprotocol",
        "transport",
    )

    def __init__(
        self,
        transport: asyncio.Transport,
        *,
        client: bool,
        subprotocol: str | None,
        max_size: int,
        close_timeout: float | None,
        extensions: Sequence[Extension] = (),
    ) -> None:
        self.transport = transport
        #: permessage-deflate, as negotiated in the handshake (None: no extension).
        self._extensions = list(extensions) or None
        #: A client masks what it sends; a server reads masked frames only.
        self._client = client
        self.subprotocol = subprotocol
        self._max_size = max_size
        self._close_timeout = close_timeout
        self.paused = False
        self.state = OPEN
        self._sink: Sink | None = None
        #: Messages read before a sink was attached (None when there are none).
        self._queued: list[Data] | None = None
        self._partial: bytearray | None = None
        self._fragments: list[bytes] | None = None
        self._fragments_size = 0
        #: The close frame received (code, reason) and whether ours went out.
        self._close_rcvd: tuple[int, str] | None = None
        self._close_sent = False
        self._close_timer: asyncio.TimerHandle | None = None
        self._closed_waiters: list[asyncio.Future[None]] | None = None
        self._drain_waiters: list[asyncio.Future[None]] | None = None
        self._on_writable: Callable[[], None] | None = None
        self._on_closed: Callable[[], None] | None = None
        #: The payload of the keepalive's ping not answered yet.
        self._ping: bytes | None = None

    # What the relay reads.

    @property
    def close_code(self) -> int | None:
        """As websockets': None while open, 1006 when closed without a close frame."""
        if self.state is not CLOSED:
            return None
        return 1006 if self._close_rcvd is None else self._close_rcvd[0]

    @property
    def close_reason(self) -> str | None:
        if self.state is not CLOSED:
            return None
        return "" if self._close_rcvd is None else self._close_rcvd[1]

    @property
    def close_received(self) -> bool:
        """Whether the peer sent a close frame (it closed on purpose)."""
        return self._close_rcvd is not None

    @property
    def remote_address(self) -> Any:
        return self.transport.get_extra_info("peername")

    # Receiving.

    def attach(self, sink: Sink) -> None:
        """Hand every message to ``sink``, those read before it was attached first."""
        queued, self._queued = self._queued, None
        if self._sink is None:  # else a close frame came or the connection failed
            self._sink = sink
        for message in queued or ():  # read before either: delivered, as websockets does
            sink(message)
        if queued is not None and len(queued) >= MAX_QUEUED and self.state is not CLOSED:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        partial = self._partial
        if partial is not None:
            self._partial = None
            partial += data
            self._read_frames(partial)
        else:
            self._read_frames(data)

    def _read_frames(self, data: bytes | bytearray) -> None:
        """Handle every whole frame in ``data`` and keep the start of the next one."""
        masked = not self._client
        max_size = self._max_size
        extended = self._extensions is not None
        start = 0
        size = len(data)
        while start < size:
            if self._sink is _ignore:  # a close frame came, or we failed: read no more
                return
            kind, payload_start, end = ws_codec.scan(
                data, start, masked=masked, max_size=max_size, extended=extended
            )
            if kind == ws_codec.INCOMPLETE:
                self._partial = (
                    data if start == 0 and isinstance(data, bytearray) else bytearray(data[start:])
                )
                return
            if kind == ws_codec.FOREIGN:
                self.fail(*ws_codec.refusal(data, start, masked=masked, max_size=max_size))
                return
            if masked:
                payload = ws_codec.unmask(data, payload_start, end)
            else:
                payload = bytes(data[payload_start:end])
            if kind == ws_codec.OTHER:
                self._other_frame(data[start], payload)
            elif self._fragments is not None:
                self.fail(1002, "expected a continuation frame")
            else:
                self._deliver(kind == ws_codec.TEXT, payload)
            start = end

    def _other_frame(self, first: int, payload: bytes) -> None:
        """A control frame, a fragment of a message, or a frame an extension decodes."""
        if self._extensions is not None:
            decoded = self._decoded(first, payload)
            if decoded is None:
                return
            first, payload = decoded
        opcode = first & 0x0F
        final = bool(first & 0x80)
        if opcode >= ws_codec.CLOSE:
            if not final:
                self.fail(1002, "fragmented control frame")
            elif len(payload) > 125:
                self.fail(1002, "control frame too long")
            elif opcode == ws_codec.PING:
                if self.state is OPEN:
                    self._write_frame(ws_codec.PONG, payload)
            elif opcode == ws_codec.PONG:
                if payload == self._ping:
                    self._ping = None
            else:
                self._close_frame(payload)
            return
        fragments = self._fragments
        if opcode == ws_codec.CONTINUATION:
            if fragments is None:
                self.fail(1002, "unexpected continuation frame")
                return
        elif fragments is not None:
            self.fail(1002, "expected a continuation frame")
            return
        else:  # the first fragment: its opcode says text or binary
            fragments = self._fragments = [bytes((opcode,))]
            self._fragments_size = 0
        self._fragments_size += len(payload)
        if self._fragments_size > self._max_size:
            self.fail(1009, f"over size limit ({self._fragments_size} > {self._max_size} bytes)")
            return
        if len(fragments) > MAX_FRAGMENTS:
            self.fail(1009, "too many fragments")
            return
        fragments.append(payload)
        if final:
            self._fragments = None
            self._deliver(fragments[0][0] == ws_codec.TEXT, b"".join(fragments[1:]))

    def _decoded(self, first: int, payload: bytes) -> tuple[int, bytes] | None:
        """The frame as the extensions decode it (decompressed), or None once failed."""
        assert self._extensions is not None
        frame = Frame(
            Opcode(first & 0x0F),
            payload,
            bool(first & 0x80),
            bool(first & 0x40),
            bool(first & 0x20),
            bool(first & 0x10),
        )
        room = self._max_size - (self._fragments_size if self._fragments is not None else 0)
        try:
            for extension in reversed(self._extensions):
                frame = extension.decode(frame, max_size=room if room < NO_LIMIT else None)
        except PayloadTooBig:
            self.fail(1009, f"over size limit (> {self._max_size} bytes)")
            return None
        except ProtocolError as exc:
            self.fail(1002, str(exc))
            return None
        if frame.rsv1 or frame.rsv2 or frame.rsv3:
            self.fail(1002, "reserved bits must be 0")
            return None
        return (0x80 if frame.fin else 0) | frame.opcode, bytes(frame.data)

    def _deliver(self, text: bool, payload: bytes) -> None:
        message: Data
        if text:
            try:
                message = payload.decode()
            except UnicodeDecodeError as exc:
                self.fail(1007, f"{exc.reason} at position {exc.start}")
                return
        else:
            message = payload
        sink = self._sink
        if sink is not None:
            sink(message)
            return
        queued = self._queued
        if queued is None:
            queued = self._queued = []
        queued.append(message)
        if len(queued) == MAX_QUEUED:  # the session is not taking them yet: wait for it
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        return False  # the transport closes; connection_lost follows

    # Sending.

    def writable(self) -> bool:
        """Whether a message may be written at once: open, and the peer keeping up."""
        return self.state is OPEN and not self.paused

    def write(self, message: str | bytes) -> None:
        """Write one text (``str``) or binary (``bytes``) message now (only when open)."""
        if self._extensions is not None:  # compressed by permessage-deflate
            opcode = Opcode.TEXT if isinstance(message, str) else Opcode.BINARY
            payload = message.encode() if isinstance(message, str) else message
            frame = Frame(opcode, payload).serialize(mask=self._client, extensions=self._extensions)
            self.transport.write(frame)
            return
        if isinstance(message, str):
            frame = ws_codec.encode(message.encode(), text=True, mask=self._client)
        else:
            frame = ws_codec.encode(message, text=False, mask=self._client)
        self.transport.write(frame)

    async def send(self, message: str | bytes) -> None:
        """Write one message once the peer keeps up; ConnectionClosed once closing."""
        while self.paused and self.state is OPEN:
            if self._drain_waiters is None:
                self._drain_waiters = []
            await wait_in(self._drain_waiters)
        if self.state is not OPEN:
            raise self._closed_error()
        self.write(message)

    def _write_frame(self, opcode: int, payload: bytes) -> None:
        self.transport.write(ws_codec.encode_frame(opcode, payload, mask=self._client))

    def notify_writable(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` once, when the write buffer drains or the connection is lost
        (one listener: a later call replaces it)."""
        self._on_writable = listener

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._writable()

    def _writable(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, None
        release(waiters)
        listener = self._on_writable
        if listener is not None:
            self._on_writable = None
            listener()

    # Keepalive.

    def keepalive_ping(self) -> None:
        """Send a ping; :meth:`keepalive_answered` tells whether its pong came."""
        self._ping = os.urandom(4)
        self._write_frame(ws_codec.PING, self._ping)

    def keepalive_answered(self) -> bool:
        return self._ping is None

    # Closing.

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """The closing handshake: our close frame, the peer's, then the TCP connection
        closed (aborted if that takes longer than ``close_timeout``)."""
        if self.state is OPEN:
            self._send_close(code, reason)
            self._arm_close_timer()
        await self.wait_closed()

    def on_closed(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the TCP connection is closed (soon, if it is already):
        what waits for a leg to end need not be a task (one callback; a later call
        replaces it)."""
        if self.state is CLOSED:
            asyncio.get_running_loop().call_soon(callback)
        else:
            self._on_closed = callback

    async def wait_closed(self) -> None:
        """Wait until the TCP connection is closed (a cancelled waiter stops only itself)."""
        if self.state is CLOSED:
            return
        if self._closed_waiters is None:
            self._closed_waiters = []
        await wait_in(self._closed_waiters)

    def fail(self, code: int, reason: str) -> None:
        """Fail the connection as websockets does: a close frame, no more reading, and
        the TCP connection closed (by a server at once, by a client after the server's)."""
        self._sink = _ignore
        self._fragments = None
        self._partial = None
        if self.state is OPEN:
            self._send_close(code, reason)
        if self.state is CLOSED:
            return
        self._arm_close_timer()  # a peer that reads nothing would keep the socket open
        if not self._client:
            self.transport.close()

    def _close_frame(self, payload: bytes) -> None:
        try:
            code, reason = ws_codec.parse_close(payload)
        except ws_codec.BadClose as bad:
            self.fail(bad.code, bad.reason)
            return
        self._close_rcvd = (code, reason)
        self._sink = _ignore  # nothing may follow a close frame
        if not self._close_sent:
            self._close_sent = True
            self._write_frame(ws_codec.CLOSE, payload)  # the echo, as websockets sends it
        self.state = CLOSING
        self._arm_close_timer()  # a peer that reads nothing would keep the socket open
        if not self._client:  # the server closes the TCP connection first
            self.transport.close()

    def _send_close(self, code: int, reason: str) -> None:
        self._close_sent = True
        self.state = CLOSING
        self._write_frame(ws_codec.CLOSE, ws_codec.close_payload(code, reason))

    def _arm_close_timer(self) -> None:
        if self._close_timer is None and self._close_timeout is not None:
            loop = asyncio.get_running_loop()
            self._close_timer = loop.call_later(self._close_timeout, self.transport.abort)

    def _closed_error(self) -> ConnectionClosed:
        rcvd = Close(*self._close_rcvd) if self._close_rcvd is not None else None
        return ConnectionClosed(rcvd, None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = CLOSED
        self._sink = _ignore
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        waiters, self._closed_waiters = self._closed_waiters, None
        release(waiters)
        self._writable()
        callback, self._on_closed = self._on_closed, None
        if callback is not None:
            callback()
