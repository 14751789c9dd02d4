"""Every place the logger reaches into nats-py's private parts, each with a public fallback.

nats-py spends most of its per-message CPU on things the logger does not need: an
``async`` header parse, a ``Msg`` dataclass, a queue and a task hand-off per message, and
a full ``publish`` per ack. At tens of thousands of frames a second that is the logger's
limit, so, on one connection:

* :func:`tap` hands one subscription's messages to a plain function as the raw bytes the
  protocol parser produced (``Client._process_msg``);
* :func:`send_acks` writes a batch's acks as one buffer (``Client._send_command``);
* :func:`use_fast_header_parser` swaps the header parser other subscriptions use
  (``Client._parse_header_lines``).

If a nats-py release renames one of these, each function falls back (``tap`` returns
False and the subscription's own callback receives the messages; acks go one ``publish``
each; the library's parser stays) and the logger is slower, not wrong.
``tests/integration/test_logger_nats_internals.py`` pins them against a real nats-server.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeGuard

from nats.aio.client import Client
from nats.aio.subscription import Subscription

log = logging.getLogger(__name__)

#: What the protocol parser hands over: subject, reply, payload, header block (or None;
#: it starts with ``NATS/1.0``).
RawSink = Callable[[bytes, bytes, bytes, bytes | None], None]
_ProcessMsg = Callable[[int, bytes, bytes, bytes, bytes | None], Coroutine[Any, Any, None]]

#: The private names used (tests point them elsewhere to exercise the fallbacks).
PROCESS_MSG = "_process_msg"
SEND_COMMAND = "_send_command"
SUBSCRIPTION_ID = "_id"
PARSE_HEADER_LINES = "_parse_header_lines"

#: An empty-payload PUB to a JetStream reply subject is an ack (``Msg.ack`` sends just that).
_ACK = b"PUB %s 0\r\n\r\n"


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
        try:
            sink(subject, reply, data, headers)
        except Exception:  # as a subscription callback's: logged, the connection lives on
            log.exception("a tapped subscription failed on a message")


def tap(nc: Client, sub: Subscription, sink: RawSink) -> bool:
    """Give ``sub``'s messages to ``sink``, raw, instead of to its callback.

    Returns False (and changes nothing) if this nats-py has no ``_process_msg`` coroutine
    taking ``(sid, subject, reply, data, headers)`` or no subscription id (``_id``).
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
    return True


def untap(nc: Client, sub: Subscription) -> None:
    router = nc.__dict__.get(PROCESS_MSG)
    if isinstance(router, _Router):
        router.sinks.pop(getattr(sub, SUBSCRIPTION_ID, None), None)  # type: ignore[arg-type]


def _takes_raw_messages(method: object) -> TypeGuard[_ProcessMsg]:
    if not inspect.iscoroutinefunction(method):
        return False
    try:
        names = list(inspect.signature(method).parameters)
    except (TypeError, ValueError):
        return False
    return names == ["sid", "subject", "reply", "data", "headers"]


async def send_acks(nc: Client, replies: Sequence[str]) -> None:
    """Acknowledge JetStream messages by their reply subjects: one write for the batch.

    Raises ``nats.errors.Error`` as ``publish`` would (e.g. the connection is closed).
    """
    if not replies:
        return
    send_command = getattr(nc, SEND_COMMAND, None)
    if len(replies) > 1 and inspect.iscoroutinefunction(send_command):
        if nc.is_closed or nc.is_draining_pubs:
            await nc.publish(replies[-1])  # raises the error publish raises
        await send_command(b"".join([_ACK % reply.encode() for reply in replies[:-1]]))
        replies = replies[-1:]
    for reply in replies:
        # publish also makes sure the buffer is flushed, the batch above included.
        await nc.publish(reply)


def use_fast_header_parser(nc: Client, parser: Callable[[bytes], dict[str, str]]) -> None:
    """Make this connection parse headers with ``parser`` (same result, faster).

    nats-py calls ``self._parse_header_lines(raw)`` (a staticmethod); an instance attribute
    takes its place. Without it, the library's own parser stays in use.
    """
    if hasattr(nc, PARSE_HEADER_LINES):
        setattr(nc, PARSE_HEADER_LINES, parser)
