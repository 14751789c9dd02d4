"""A JetStream pull subscription that receives through a callback: batches at full speed.

nats-py's ``PullSubscription.fetch`` awaits each message of a batch in its own task and
tops out near 5,000 messages a second; the logger needs several times that. This class
speaks the same documented pull protocol (``$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>``
with ``{"batch", "expires"}``, replies to an inbox, status messages 100/404/408/409) but
collects deliveries in a plain buffer. Where nats-py allows it
(:mod:`oye_logger.nats_internals`), they come straight from the protocol parser as bytes,
all those of a read together, and only the values of the headers asked for are read
(:class:`~oye_logger.header_blocks.HeaderReader`); otherwise from the subscription's
callback.

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
from collections.abc import Sequence
from typing import NamedTuple

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from oye_logger import nats_internals
from oye_logger.header_blocks import HeaderReader

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
    """One JetStream message as the logger needs it: acknowledged by its ``reply`` (bytes:
    a batch's acks are its replies joined); ``headers``: the values of the headers the
    subscription was asked for, in that order (None for one the message lacks)."""

    subject: str
    reply: bytes
    data: bytes
    headers: tuple[str | None, ...]


#: Builds a Delivery from a tuple in C (its generated ``__new__`` is Python: one call less
#: per message).
_delivery = functools.partial(tuple.__new__, Delivery)

_STATUS_PREAMBLE = b"NATS/1.0 "


class PullError(nats.errors.Error):
    """The server ended a pull request with an error status (e.g. the consumer is gone)."""


class PullSubscription:
    """Pulls batches from one durable consumer (see the module docstring)."""

    def __init__(
        self,
        nc: Client,
        *,
        stream: str,
        consumer: str,
        headers: Sequence[str],
        api_prefix: str = "$JS.API",
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
        self._read_headers = HeaderReader(headers)
        self._no_headers = self._read_headers.pick(None)
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

    def _on_raw(self, messages: list[nats_internals.RawMessage]) -> None:
        # One call per read, not per message: the loop below is the per-message cost.
        append, read_headers = self._buffer.append, self._read_headers
        delivered = 0  # since the last status
        for subject, reply, data, headers in messages:
            if headers is None:
                values = self._no_headers
            elif headers.startswith(_STATUS_PREAMBLE):
                self._outstanding = max(0, self._outstanding - delivered)
                delivered = 0
                end = headers.find(b"\r\n")
                line = headers[len(_STATUS_PREAMBLE) : end if end >= 0 else None]
                status, _, description = line.decode("utf-8", "replace").partition(" ")
                self._on_status(status.strip(), description.strip())
                continue
            else:
                values = read_headers(headers)
            append(_delivery((subject.decode(), reply, data, values)))
            delivered += 1
        self._outstanding = max(0, self._outstanding - delivered)
        self._arrived.set()

    async def _on_msg(self, msg: Msg) -> None:
        status = msg.headers.get(STATUS) if msg.headers else None
        if status is not None:
            self._on_status(status, msg.headers.get(DESCRIPTION, "") if msg.headers else "")
            return
        values = self._read_headers.pick(msg.headers)
        self._buffer.append(Delivery(msg.subject, msg.reply.encode(), msg.data, values))
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
