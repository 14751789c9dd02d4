"""Every place the logger reaches into nats-py's private parts, each with a public fallback.

nats-py spends most of its per-message CPU on things the logger does not need: an
``async`` header parse, a ``Msg`` dataclass, a queue and a task hand-off per message, and
a full ``publish`` per ack. At tens of thousands of frames a second that is the logger's
limit, so, on one connection:

* :func:`tap` hands one subscription's messages to a plain function as the raw bytes the
  protocol parser produced (``Client._process_msg``), and, where it can, cuts them out of
  the read buffer itself (:class:`_FastParse` in ``Client._ps.parse``: nats-py's parser
  spends two regular expressions, a dict and two awaits on each message);
* :func:`send_acks` writes a batch's acks as one buffer (``Client._send_command``);
* :func:`use_fast_header_parser` swaps the header parser other subscriptions use
  (``Client._parse_header_lines``).

If a nats-py release renames one of these, each function falls back (``tap`` returns
False and the subscription's own callback receives the messages, or leaves nats-py's
parser in place and takes the messages from ``_process_msg``; acks go one ``publish``
each; the library's header parser stays) and the logger is slower, not wrong.
``tests/integration/test_logger_nats_internals.py`` pins them against a real nats-server.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeGuard

from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.protocol import parser as nats_parser

log = logging.getLogger(__name__)

#: A message as the protocol parser hands it over: subject, reply, payload, header block
#: (or None; it starts with ``NATS/1.0``).
RawMessage = tuple[bytes, bytes, bytes, bytes | None]
#: Takes a subscription's messages, in order, as many at a time as arrived together.
RawSink = Callable[[list[RawMessage]], None]
_ProcessMsg = Callable[[int, bytes, bytes, bytes, bytes | None], Coroutine[Any, Any, None]]
_Parse = Callable[..., Coroutine[Any, Any, None]]

#: The private names used (tests point them elsewhere to exercise the fallbacks).
PROCESS_MSG = "_process_msg"
SEND_COMMAND = "_send_command"
SUBSCRIPTION_ID = "_id"
PARSE_HEADER_LINES = "_parse_header_lines"
PARSER = "_ps"

#: nats-py's parser between two protocol elements (``Parser.state``).
_AWAITING_CONTROL_LINE = getattr(nats_parser, "AWAITING_CONTROL_LINE", None)
_CRLF = b"\r\n"
#: How the protocol elements that carry a payload begin (``MSG_RE``, ``HMSG_RE``).
_MESSAGE_OPS = (b"MSG ", b"MSG\t", b"HMSG ", b"HMSG\t")

#: An empty-payload PUB to a JetStream reply subject is an ack (``Msg.ack`` sends just that):
#: a batch's acks are its reply subjects joined by the end of one PUB and the start of the next.
_ACK_START = b"PUB "
_ACK_END = b" 0\r\n\r\n"
_ACK_BETWEEN = _ACK_END + _ACK_START


class _Router:
    """Takes ``Client._process_msg``'s place: tapped subscriptions here, the rest as before."""

    def __init__(self, nc: Client, original: _ProcessMsg) -> None:
        self.nc = nc
        self.original = original
        self.sinks: dict[int, RawSink] = {}

    async def __call__(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        sink = self.sinks.get(sid)
        if sink is None:
            await self.original(sid, subject, reply, data, headers)
            return
        stats = self.nc.stats
        stats["in_msgs"] += 1
        stats["in_bytes"] += len(data)
        _deliver(sink, [(subject, reply, data, headers)])


def _deliver(sink: RawSink, messages: list[RawMessage]) -> None:
    try:
        sink(messages)
    except Exception:  # as a subscription callback's: logged, the connection lives on
        log.exception("a tapped subscription failed on a message")


class _FastParse:
    """Takes ``Parser.parse``'s place: tapped subscriptions' messages are cut out here.

    Complete ``MSG``/``HMSG`` deliveries of tapped subscriptions at the head of the buffer
    go to their sinks in a plain loop (a ``find``, a ``split`` and two slices each), a
    list per sink and read.
    Anything else goes to nats-py's own ``parse`` one protocol element at a time, so that
    it never runs on into the tapped messages behind it (and never stops half-way through
    one of them). A message not complete yet waits in the buffer, as it would there.
    """

    def __init__(self, nc: Client, parser: Any, original: _Parse, router: _Router) -> None:
        self.nc = nc
        self.parser = parser
        self.original = original
        self.sinks = router.sinks
        #: The buffer must hold this many bytes before parsing is worth trying again
        #: (``_wanted_of``: the buffer this applies to; a reset makes a new one).
        self._wanted = 0
        self._wanted_of: bytearray | None = None

    async def __call__(self, data: bytes = b"") -> None:
        if not self.sinks:
            await self.original(data)
            return
        parser = self.parser
        parser.buf.extend(data)
        while buf := parser.buf:
            if len(buf) < self._wanted and self._wanted_of is buf:
                return
            self._wanted_of = None
            if parser.state == _AWAITING_CONTROL_LINE:
                taken, wanted = self._take(buf)
                if taken:
                    del buf[:taken]
                    if not wanted:
                        continue
                end = wanted or _element_end(buf)
            else:  # nats-py stopped inside a message before the tap: let it finish that one
                end = parser.needed + len(_CRLF)
            if end is None:  # not understood here: nats-py's parser says what it is
                await self.original()
                return
            if end > len(buf):
                self._wanted, self._wanted_of = end, buf
                return
            rest = buf[end:]
            del buf[end:]
            await self.original()
            if parser.buf is not buf:  # reset (a reconnect): the rest was the old connection's
                return
            consumed = not buf
            buf.extend(rest)
            if not consumed:  # nats-py waits for more (e.g. an over-long line): so do we
                return

    def _take(self, buf: bytearray) -> tuple[int, int]:
        """Hand the complete tapped messages at the head of ``buf`` to their sinks.

        Returns the bytes they took, and, if the next message is tapped but incomplete,
        the size ``buf`` must reach (relative to its head after the taken bytes), else 0.
        """
        if not (buf.startswith(b"HMSG ") or buf.startswith(b"MSG ")):
            return 0, 0
        # By the sid as the server writes it: no int() per message (another spelling of
        # a tapped sid goes the long way, through the router, to the same sink).
        sinks = {b"%d" % sid: sink for sid, sink in self.sinks.items()}
        head = buf[: buf.find(_CRLF)].split()  # no copy of the buffer for another's message
        if len(head) < 3 or bytes(head[2]) not in sinks:
            return 0, 0
        view = bytes(buf)  # one copy: slices of bytes are bytes
        size = len(view)
        pos = count = payload_bytes = wanted = 0
        sink: RawSink | None = None
        messages: list[RawMessage] = []
        while True:
            if view.startswith(b"HMSG ", pos):
                args = pos + 5
            elif view.startswith(b"MSG ", pos):
                args = pos + 4
            else:
                break
            eol = view.find(_CRLF, pos)
            if eol < 0:
                wanted = size + 1 - pos
                break
            try:
                if args - pos == 5:
                    subject, sid, reply, header_size, total_size = view[args:eol].split()
                else:
                    subject, sid, reply, total_size = view[args:eol].split()
                    header_size = b"0"
                to = sinks.get(sid)
                start = eol + 2
                data_start, end = start + int(header_size), start + int(total_size)
            except ValueError:  # no reply subject, or sizes not numbers: nats-py's parser decides
                break
            if to is None or not start <= data_start <= end:
                break
            if end + 2 > size:
                wanted = end + 2 - pos
                break
            if to is not sink:
                if sink is not None:
                    _deliver(sink, messages)
                sink, messages = to, []
            headers = view[start:data_start] if data_start > start else None
            messages.append((subject, reply, view[data_start:end], headers))
            pos = end + 2
            count += 1
            payload_bytes += end - data_start
        if sink is not None:
            _deliver(sink, messages)
        if count:
            stats = self.nc.stats
            stats["in_msgs"] += count
            stats["in_bytes"] += payload_bytes
        return pos, wanted


def _element_end(buf: bytearray) -> int | None:
    """Where the protocol element at the head of ``buf`` ends (past its CRLF), None if its
    size cannot be read here; an incomplete control line needs at least one more byte."""
    eol = buf.find(_CRLF)
    if eol < 0:
        return len(buf) + 1
    if not buf.startswith(_MESSAGE_OPS):
        return eol + 2
    size = bytes(buf[:eol]).split()[-1]
    return eol + 2 + int(size) + 2 if size.isdigit() else None


def tap(nc: Client, sub: Subscription, sink: RawSink) -> bool:
    """Give ``sub``'s messages to ``sink``, raw, instead of to its callback.

    Returns False (and changes nothing) if this nats-py has no ``_process_msg`` coroutine
    taking ``(sid, subject, reply, data, headers)`` or no subscription id (``_id``). The
    parser is replaced too if it looks as expected (:func:`_install_fast_parse`).
    """
    sid = getattr(sub, SUBSCRIPTION_ID, None)
    if not isinstance(sid, int):
        log.warning("this nats-py has no subscription ids; using its callbacks")
        return False
    router = nc.__dict__.get(PROCESS_MSG)
    if not isinstance(router, _Router):
        original = getattr(nc, PROCESS_MSG, None)
        if not _takes_raw_messages(original):
            log.warning("this nats-py cannot hand messages over raw; using its callbacks")
            return False
        router = _Router(nc, original)
        setattr(nc, PROCESS_MSG, router)
    router.sinks[sid] = sink
    _install_fast_parse(nc, router)
    return True


def fast_parse_installed(nc: Client) -> bool:
    """Whether tapped messages are cut out of the read buffer by :class:`_FastParse`."""
    parser = getattr(nc, PARSER, None)
    return isinstance(getattr(parser, "__dict__", {}).get("parse"), _FastParse)


def _install_fast_parse(nc: Client, router: _Router) -> None:
    """Put :class:`_FastParse` in front of nats-py's parser, if that parser is the one it
    knows: a ``parse(data)`` coroutine, a ``buf`` bytearray, ``state`` and ``needed``."""
    if fast_parse_installed(nc):
        return
    parser: Any = getattr(nc, PARSER, None)
    original = getattr(parser, "parse", None)
    if not (
        isinstance(_AWAITING_CONTROL_LINE, int)
        and isinstance(getattr(parser, "buf", None), bytearray)
        and isinstance(getattr(parser, "state", None), int)
        and isinstance(getattr(parser, "needed", None), int)
        and _takes_data(original)
    ):
        log.warning("this nats-py's protocol parser is not the one known; using it as it is")
        return
    parser.parse = _FastParse(nc, parser, original, router)


def untap(nc: Client, sub: Subscription) -> None:
    router = nc.__dict__.get(PROCESS_MSG)
    if isinstance(router, _Router):
        router.sinks.pop(getattr(sub, SUBSCRIPTION_ID, None), None)  # type: ignore[arg-type]


def _takes_data(method: object) -> TypeGuard[_Parse]:
    if not inspect.iscoroutinefunction(method):
        return False
    try:
        return list(inspect.signature(method).parameters) == ["data"]
    except (TypeError, ValueError):
        return False


def _takes_raw_messages(method: object) -> TypeGuard[_ProcessMsg]:
    if not inspect.iscoroutinefunction(method):
        return False
    try:
        names = list(inspect.signature(method).parameters)
    except (TypeError, ValueError):
        return False
    return names == ["sid", "subject", "reply", "data", "headers"]


async def send_acks(nc: Client, replies: Sequence[bytes]) -> None:
    """Acknowledge JetStream messages by their reply subjects: one write for the batch.

    Raises ``nats.errors.Error`` as ``publish`` would (e.g. the connection is closed).
    """
    if not replies:
        return
    send_command = getattr(nc, SEND_COMMAND, None)
    if len(replies) > 1 and inspect.iscoroutinefunction(send_command):
        if nc.is_closed or nc.is_draining_pubs:
            await nc.publish(replies[-1].decode())  # raises the error publish raises
        await send_command(_ACK_START + _ACK_BETWEEN.join(replies[:-1]) + _ACK_END)
        replies = replies[-1:]
    for reply in replies:
        # publish also makes sure the buffer is flushed, the batch above included.
        await nc.publish(reply.decode())


def use_fast_header_parser(nc: Client, parser: Callable[[bytes], dict[str, str]]) -> None:
    """Make this connection parse headers with ``parser`` (same result, faster).

    nats-py calls ``self._parse_header_lines(raw)`` (a staticmethod); an instance attribute
    takes its place. Without it, the library's own parser stays in use.
    """
    if hasattr(nc, PARSE_HEADER_LINES):
        setattr(nc, PARSE_HEADER_LINES, parser)
