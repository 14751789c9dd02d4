"""A JetStream pull subscription that receives through a callback: batches at full speed.

nats-py's ``PullSubscription.fetch`` awaits each message of a batch in its own task and
tops out near 5,000 messages a second; the logger needs several times that. This class
speaks the same documented pull protocol (``$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>``
with ``{"batch", "expires"}``, replies to an inbox, status messages 100/404/408/409) but
collects deliveries in a plain buffer. Where nats-py allows it
(:mod:`oye_logger.nats_internals`), they come straight from the protocol parser as bytes,
and only the headers are parsed (:func:`parse_header_block`); otherwise from the
subscription's callback.

At most one pull request is outstanding. :meth:`PullSubscription.fetch` returns as soon as
the buffer holds a full batch, when the request is over, when no message came for
``linger``, or ``MAX_LINGERS`` lingers after the first message; messages that arrive
later stay buffered for the next call. (Timing the linger from the first message only
cut a backlog into batches of 300-900: the logger parses a batch as it arrives.) A
request lost in a NATS restart is forgotten once its ``expires`` has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
from typing import NamedTuple

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from oye_logger import nats_internals

log = logging.getLogger(__name__)

STATUS = "Status"
DESCRIPTION = "Description"
HEARTBEAT = "100"
#: Status codes that end a pull request without trouble.
REQUEST_OVER = {"404", "408"}
#: Extra time, past a request's expiry, before the client forgets it.
EXPIRY_GRACE = 0.5
MIN_EXPIRES = 0.01
#: A fetch sends at most this many requests (a top-up after a short one), never a storm.
MAX_REQUESTS_PER_FETCH = 2
#: A trickle of messages is handed over at most this many lingers after its first one.
MAX_LINGERS = 10


class Delivery(NamedTuple):
    """One JetStream message as the logger needs it (acknowledged by its ``reply``)."""

    subject: str
    reply: str
    data: bytes
    headers: dict[str, str] | None


#: Builds a Delivery from a tuple in C (its generated ``__new__`` is Python: one call less
#: per message).
_delivery = functools.partial(tuple.__new__, Delivery)

_WHITESPACE = re.compile(rb"[\s\x1c-\x1f]")


def parse_header_lines(raw: bytes) -> dict[str, str]:
    """nats-py's ``Client._parse_header_lines``, same result (names with whitespace or
    non-ASCII bytes are skipped, values decoded with replacement), without a per-character
    generator."""
    out: dict[str, str] = {}
    for line in raw.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        name = name.strip()
        if not name.isascii() or _WHITESPACE.search(name):
            continue
        out[name.decode("ascii")] = value.strip().decode("utf-8", "replace")
    return out


_PREAMBLE = "NATS/1.0\r\n"
_PREAMBLE_BYTES = _PREAMBLE.encode()
_STATUS_PREAMBLE = b"NATS/1.0 "


def parse_header_block(block: bytes) -> dict[str, str] | None:
    """The headers of a message that has no status line, as nats-py gives them (None when
    there are none).

    Headers as nats-py writes them (``Name: value`` lines, values without surrounding
    whitespace) take a fast path: one decode and one split; anything else goes through
    :func:`parse_header_lines`.
    """
    text = block.decode("utf-8", "replace")
    # No value starts or ends with a space (nats-py strips them).
    if (
        text.startswith(_PREAMBLE)
        and text.endswith("\r\n\r\n")
        and ":  " not in text
        and " \r\n" not in text
    ):
        lines = text[len(_PREAMBLE) : -4].split("\r\n")
        try:
            headers = dict([line.split(": ", 1) for line in lines])
        except ValueError:  # a line without ": "
            pass
        else:
            names = "".join(headers)
            # nats-py skips names with whitespace or non-ASCII bytes and cuts at the first
            # ":"; a value holding other whitespace (a tab, a lone CR) is not printable.
            if (
                names.isascii()
                and names.isprintable()
                and " " not in names
                and ":" not in names
                and "".join(headers.values()).isprintable()
            ):
                return headers or None
    return parse_header_lines(block.removeprefix(_PREAMBLE_BYTES)) or None


class PullError(nats.errors.Error):
    """The server ended a pull request with an error status (e.g. the consumer is gone)."""


class PullSubscription:
    """Pulls batches from one durable consumer (see the module docstring)."""

    def __init__(
        self, nc: Client, *, stream: str, consumer: str, api_prefix: str = "$JS.API"
    ) -> None:
        self._nc = nc
        self._next_subject = f"{api_prefix}.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._inbox = nc.new_inbox()
        self._sub: Subscription | None = None
        self._buffer: list[Delivery] = []
        self._outstanding = 0  # messages the open request may still deliver
        self._request_deadline = 0.0
        self._error: str | None = None
        self._arrived = asyncio.Event()
        #: Whether messages come raw from the protocol parser (else through ``_on_msg``).
        self.raw = False

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(self._inbox, cb=self._on_msg)
        # No pull request is out yet, so nothing can reach the callback before the tap.
        self.raw = nats_internals.tap(self._nc, self._sub, self._on_raw)

    async def unsubscribe(self) -> None:
        if self._sub is not None:
            nats_internals.untap(self._nc, self._sub)
            await self._sub.unsubscribe()
            self._sub = None

    def _on_raw(self, subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        if headers is not None and headers.startswith(_STATUS_PREAMBLE):
            end = headers.find(b"\r\n")
            line = headers[len(_STATUS_PREAMBLE) : end if end >= 0 else None]
            status, _, description = line.decode("utf-8", "replace").partition(" ")
            self._on_status(status.strip(), description.strip())
            return
        parsed = parse_header_block(headers) if headers is not None else None
        self._buffer.append(_delivery((subject.decode(), reply.decode(), data, parsed)))
        if self._outstanding:
            self._outstanding -= 1
        self._arrived.set()

    async def _on_msg(self, msg: Msg) -> None:
        status = msg.headers.get(STATUS) if msg.headers else None
        if status is not None:
            self._on_status(status, msg.headers.get(DESCRIPTION, "") if msg.headers else "")
            return
        self._buffer.append(Delivery(msg.subject, msg.reply, msg.data, msg.headers))
        if self._outstanding:
            self._outstanding -= 1
        self._arrived.set()

    def _on_status(self, status: str, description: str) -> None:
        if status == HEARTBEAT:
            return
        self._outstanding = 0
        if status not in REQUEST_OVER:
            self._error = f"{status} {description}".strip()
        self._arrived.set()

    async def fetch(self, batch: int, *, max_wait: float, linger: float = 0.02) -> list[Delivery]:
        """Up to ``batch`` messages; an empty list if none came within ``max_wait``.

        Raises :class:`PullError` when the server refused the request, and
        ``nats.errors.Error`` when the request could not be sent.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait
        first_seen = quiet_since = loop.time() if self._buffer else None
        seen = len(self._buffer)
        requests = 0
        while len(self._buffer) < batch:
            if self._error is not None:
                error, self._error = self._error, None
                raise PullError(error)
            now = loop.time()
            if now > self._request_deadline:
                self._outstanding = 0  # expired, or lost with a NATS restart
            if self._outstanding == 0:
                if requests == MAX_REQUESTS_PER_FETCH or deadline - now < MIN_EXPIRES:
                    break
                await self._request(batch - len(self._buffer), deadline - now)
                requests += 1
            if len(self._buffer) != seen:
                seen, quiet_since = len(self._buffer), now
                first_seen = now if first_seen is None else first_seen
            if first_seen is None or quiet_since is None:
                wake_at = deadline
            else:
                wake_at = min(deadline, quiet_since + linger, first_seen + linger * MAX_LINGERS)
            if now >= wake_at:
                break
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(wake_at):
                    await self._arrived.wait()
        taken, self._buffer = self._buffer[:batch], self._buffer[batch:]
        return taken

    async def drain(self) -> list[Delivery]:
        """Everything the open request still brings (it ends by its expiry), then the rest.

        For a clean stop: no message is left delivered but never handed over.
        """
        loop = asyncio.get_running_loop()
        while self._outstanding and loop.time() < self._request_deadline:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(self._request_deadline):
                    await self._arrived.wait()
        self._outstanding = 0
        taken, self._buffer = self._buffer, []
        return taken

    async def _request(self, count: int, expires: float) -> None:
        expires_ns = int(expires * 1e9)
        body = json.dumps({"batch": count, "expires": expires_ns}).encode()
        await self._nc.publish(self._next_subject, body, reply=self._inbox)
        self._outstanding = count
        self._request_deadline = asyncio.get_running_loop().time() + expires + EXPIRY_GRACE
