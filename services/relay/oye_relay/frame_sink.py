"""WebSocket connections that hand each complete message to a callback as it is parsed.

websockets puts every received frame in its ``Assembler`` and wakes the task waiting in
``recv()``: a task wake-up per frame and direction, most of what receiving a frame costs
the relay. Once a sink is attached (:meth:`FrameSink.attach`), a complete text or binary
message goes straight to it from ``data_received`` instead, in the order of the wire:
fragments are joined here (``max_size`` is enforced by the protocol, as before), text is
decoded and invalid UTF-8 fails the connection with 1007, as ``recv()`` would. Control
frames keep websockets' handling, and so does everything before ``attach`` (the
handshake, and ``recv()`` for connections that never attach one).

Once websockets has done a handshake, the relay's legs are its own
(:class:`~oye_relay.legs.WebSocketLeg`, which cuts frames with
:mod:`oye_relay.ws_codec`). A connection stays one of these only when it cannot be
handed over (:func:`~oye_relay.legs.take_over`), or for what the relay reads with
``recv()`` (a pending charger, a secondary backend); it has the same interface
(:class:`~oye_relay.legs.Leg`).

Connections also tell one listener when their write buffer has drained
(:meth:`FrameSink.notify_writable`), so a relay that stopped reading one peer because
the other was not keeping up can read on.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import Any, ClassVar, NoReturn

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.connection import Connection
from websockets.asyncio.messages import MAX_FRAGMENTS, Assembler
from websockets.asyncio.server import ServerConnection
from websockets.frames import BINARY, CONT, TEXT, CloseCode, Frame
from websockets.protocol import Event, Protocol, State
from websockets.streams import StreamReader
from websockets.typing import Data

from oye_relay import ws_codec

Sink = Callable[[Data], None]


def _retrieve(pong: asyncio.Future[float]) -> None:
    if not pong.cancelled():
        pong.exception()


def _ignore(message: Data) -> None:
    """The sink of a connection that failed: nothing more is delivered."""


class _Detached(Assembler):
    """In place of a connection's Assembler once a sink takes its messages (an Assembler
    with its queue costs 1.3 KiB): ``recv()`` then ends as on a closed connection."""

    def __init__(self) -> None:  # no queue: nothing is ever put in it
        self.closed = True
        self.get_in_progress = False

    async def get(self, decode: bool | None = None) -> NoReturn:
        raise EOFError("the messages go to a sink")

    def get_iter(self, decode: bool | None = None) -> NoReturn:
        raise EOFError("the messages go to a sink")


#: One for every connection with a sink (it holds nothing).
DETACHED = _Detached()


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


_AT_EOF = StreamReader.at_eof.__code__
NO_LIMIT = 2**63


def between_frames(protocol: Protocol) -> bool:
    """Whether websockets' parser holds no part of a frame: it waits in ``at_eof()``,
    where every frame starts (a parser that has read a frame's first two bytes may have
    an empty buffer too). The server's and client's parsers reach it through the
    handshake's generator."""
    generator = protocol.parser
    while (inner := getattr(generator, "gi_yieldfrom", None)) is not None:
        generator = inner
    return getattr(generator, "gi_code", None) is _AT_EOF


def size_limit(protocol: Protocol) -> int:
    limits = [n for n in (protocol.max_message_size, protocol.max_fragment_size) if n is not None]
    return min(limits, default=NO_LIMIT)


class FrameSink(Connection):
    """Mixed into websockets' connections (below).

    Its state is in slots, not in the instance's ``__dict__``: websockets' connections
    already hold 27 attributes there, and more would turn that dict from the 290 bytes of
    a key-sharing one into a 1.6 KiB one, on each of a charger's two legs.
    """

    __slots__ = (
        "_close_waiters",
        "_fragments",
        "_handed_over",
        "_keepalive_pong",
        "_on_closed",
        "_on_writable",
        "_sink",
    )

    #: Whether the peer must mask its frames (it does when we are the server).
    _masked: ClassVar[bool]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # websockets sets these two in connection_made(). Set here, every attribute of
        # the class is in its instances' shared keys once the first is made: otherwise,
        # with a storm's burst of accepted connections all made before the first one's
        # connection_made(), CPython stops adding keys to the shared table and every
        # instance gets a dict of its own (1.6 KiB instead of 0.3, per leg).
        self.recv_messages = DETACHED
        self.transport = None  # type: ignore[assignment]
        # Per connection, these cost a charger 2.5 KiB for as long as it is connected:
        # an empty deque is 760 bytes (a list does what websockets asks of it: append,
        # remove, iterate), and the logger adapter websockets makes to add the connection
        # to its log records (nothing here reads that) comes with a dict and a proxy.
        self.drain_waiters = []  # type: ignore[assignment]
        adapter = self.protocol.logger
        if isinstance(adapter, logging.LoggerAdapter):
            self.protocol.logger = self.logger = adapter.logger
        #: Tasks in wait_closed() (see there).
        self._close_waiters: list[asyncio.Future[None]] | None = None
        self._sink: Sink | None = None
        #: The frames of a fragmented message received so far.
        self._fragments: list[Frame] | None = None
        self._on_writable: Callable[[], None] | None = None
        self._on_closed: Callable[[], None] | None = None
        #: The socket is a :class:`~oye_relay.legs.WebSocketLeg`'s now (see hand_over).
        self._handed_over = False
        #: The keepalive's ping not answered yet (keepalive_ping).
        self._keepalive_pong: asyncio.Future[float] | None = None

    @property
    def is_client(self) -> bool:
        """Whether this end masks what it sends (it is the client)."""
        return not self._masked

    def queued_messages(self) -> list[Data] | None:
        """The messages websockets has read and queued for ``recv()``, or None when
        they end in a fragmented message not all read yet."""
        messages: list[Data] = []
        fragments: list[Frame] = []
        for frame in self.recv_messages.frames.queue if self.recv_messages is not DETACHED else ():
            fragments.append(frame)
            if frame.fin:
                data = b"".join(f.data for f in fragments)
                try:
                    messages.append(data.decode() if fragments[0].opcode is TEXT else data)
                except UnicodeDecodeError:
                    return None  # websockets fails the connection when it is read
                fragments = []
        return None if fragments else messages

    def hand_over(self) -> None:
        """Its socket has gone to a WebSocketLeg: ``close()`` does nothing from now on
        (websockets' server closes a connection when its handler returns)."""
        self._handed_over = True
        self.recv_messages = DETACHED

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if not self._handed_over:
            await super().close(code, reason)

    @property
    def close_received(self) -> bool:
        """Whether the peer sent a close frame (it closed on purpose)."""
        return self.protocol.close_rcvd is not None

    # Sending without websockets' per-message machinery: ``Connection.send`` enters an
    # async context manager for every message (state checks, close deadlines, a drain),
    # about half of what a forwarded frame costs to send. While the connection is open
    # and nothing waits in its write buffer, none of that is needed: the frame is
    # written at once, as websockets' own ``broadcast`` does.

    def writable(self) -> bool:
        """Whether a message may be written at once: the connection is open and its write
        buffer under the high-water mark (websockets' ``send`` would not wait either)."""
        return self.protocol.state is State.OPEN and not self.paused

    def write(self, message: str | bytes) -> None:
        """Write one text (``str``) or binary (``bytes``) message now (only when open)."""
        # The relay never sends fragmented messages, so no other send can be half-way through.
        protocol = self.protocol
        text = isinstance(message, str)
        payload = message.encode() if isinstance(message, str) else message
        if protocol.extensions:  # compression: websockets encodes the frame
            if text:
                protocol.send_text(payload)
            else:
                protocol.send_binary(payload)
            self.send_data()
            return
        # The transport reports socket errors through connection_lost, as for send().
        self.transport.write(ws_codec.encode(payload, text=text, mask=not self._masked))

    async def send(self, message: Any, *, text: bool | None = None) -> None:
        """Send one message: at once when open and unblocked, else through websockets'
        ``send`` (which waits for the buffer to drain and raises ConnectionClosed)."""
        if (
            text is None
            and isinstance(message, str | bytes)
            and self.protocol.state is State.OPEN
            and not self.transport.get_write_buffer_size()
        ):
            self.write(message)
            return
        await super().send(message, text=text)

    # The relay's keepalive (keepalive.py).

    def keepalive_ping(self) -> None:
        """Send a ping; :meth:`keepalive_answered` tells whether its pong came."""
        data = os.urandom(4)
        while data in self.pending_pings:
            data = os.urandom(4)
        pong = self.loop.create_future()
        pong.add_done_callback(_retrieve)  # a closed connection fails it; nobody awaits it
        # Where websockets looks for the ping a pong answers (acknowledge_pings).
        self.pending_pings[data] = (pong, self.loop.time())
        self._keepalive_pong = pong
        self.protocol.send_ping(data)
        self.send_data()

    def keepalive_answered(self) -> bool:
        pong = self._keepalive_pong
        return pong is not None and pong.done() and not pong.cancelled() and not pong.exception()

    def fail(self, code: int, reason: str) -> None:
        """Fail the connection: a close frame now; websockets closes the socket."""
        self.protocol.fail(code, reason)
        self.send_data()

    def attach(self, sink: Sink) -> None:
        """Hand every later message to ``sink``; messages already queued for ``recv()``
        (those that came before the session was ready) go first."""
        assembler = self.recv_messages
        assert not assembler.get_in_progress, "attach() while recv() is running"
        self._sink = sink
        self.recv_messages = DETACHED
        if assembler.paused:  # it stopped reading for its queue, which goes now
            self.transport.resume_reading()
        for frame in assembler.frames.queue:
            self._take(frame, sink)

    async def wait_closed(self) -> None:
        """Wait until the connection is closed, as websockets' ``wait_closed()`` does but
        without ``asyncio.shield`` (an outer future and two callbacks, 1 KiB held for a
        charger's whole connection by the session waiting on each leg): a plain future,
        resolved by ``connection_lost``, which a cancelled waiter may cancel alone."""
        if self.connection_lost_waiter.done():
            return
        if self._close_waiters is None:
            self._close_waiters = []
        await wait_in(self._close_waiters)

    def on_closed(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the TCP connection is closed (soon, if it is already;
        one callback: a later call replaces it)."""
        if self.connection_lost_waiter.done():
            self.loop.call_soon(callback)
        else:
            self._on_closed = callback

    def notify_writable(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` once, when the write buffer falls below its low-water mark
        or the connection is lost (one listener: a later call replaces it)."""
        self._on_writable = listener

    def process_event(self, event: Event) -> None:
        sink = self._sink
        if sink is not None and isinstance(event, Frame) and event.opcode in (TEXT, BINARY, CONT):
            if sink is not _ignore:  # after a failure, the rest of what was read is dropped
                self._take(event, sink)
        else:
            super().process_event(event)

    def _take(self, frame: Frame, sink: Sink) -> None:
        # The protocol has checked the sequence: a continuation only after a first
        # fragment, no new message before the last fragment, the size within max_size.
        fragments = self._fragments
        if fragments is None:
            if frame.fin:
                self._deliver(frame.opcode is TEXT, frame.data, sink)
            else:
                self._fragments = [frame]
            return
        if len(fragments) >= MAX_FRAGMENTS:  # as recv() refuses them (empty ones add up)
            self._fragments = None
            self._fail(CloseCode.MESSAGE_TOO_BIG, "too many fragments")
            return
        fragments.append(frame)
        if frame.fin:
            self._fragments = None
            self._deliver(fragments[0].opcode is TEXT, b"".join(f.data for f in fragments), sink)

    def _deliver(self, text: bool, data: bytes | bytearray | memoryview, sink: Sink) -> None:
        if not text:
            sink(bytes(data))  # bytes stay the same object; a bytearray becomes bytes
            return
        try:
            message = bytes(data).decode()
        except UnicodeDecodeError as exc:
            self.set_connection_exc(exc)
            self._fail(CloseCode.INVALID_DATA, f"{exc.reason} at position {exc.start}")
            return
        sink(message)

    def _fail(self, code: CloseCode, reason: str) -> None:
        """Fail the connection as ``recv()`` would, but without a task to wait in: the
        close frame goes out now, and the socket is cut if the peer has not closed it
        within ``close_timeout``."""
        self._sink = _ignore
        self.protocol.fail(code, reason)
        try:
            self.send_data()
        except Exception as exc:  # as data_received() treats a failed write
            self.set_connection_exc(exc)
        if self.close_timeout is not None:
            self.loop.call_later(self.close_timeout, self.transport.abort)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._writable()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        waiters, self._close_waiters = self._close_waiters, None
        release(waiters)
        self._writable()
        callback, self._on_closed = self._on_closed, None
        if callback is not None:
            callback()

    def _writable(self) -> None:
        listener = self._on_writable
        if listener is not None:
            self._on_writable = None
            listener()


class RelayServerConnection(FrameSink, ServerConnection):
    """A charger's connection (``serve(create_connection=...)``)."""

    _masked = True


class RelayClientConnection(FrameSink, ClientConnection):
    """A backend's connection (``connect(create_connection=...)``)."""

    _masked = False
