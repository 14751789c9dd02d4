"""NATS subscriptions that hand each message to a plain function: no task per subscription.

The relay subscribes once per charger it holds (``{prefix}.inject.{cp}``: only the holder
may have interest, so NATS answers "no responders" for a charger nobody holds). A
nats-py subscription with a callback costs a task reading an ``asyncio.Queue`` (three
deques and an Event): about 4 KiB per charger, for a subject that hears a request now
and then. A subscription made without a callback starts no task; nats-py puts its
messages in ``Subscription._pending_queue`` with ``put_nowait``, which :class:`_Handoff`
takes instead, calling the handler at once (from nats-py's reading task: the handler
must be quick and must not await).

This relies on nats-py internals (2.x: ``_pending_queue``, ``_pending_size``,
``_message_iterator``), pinned by tests/integration/test_relay_nats.py against a real
nats-server. If they are not there, :func:`subscribe` falls back to a documented
subscription with a callback (and its task).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

log = logging.getLogger(__name__)

Handler = Callable[[Msg], None]


class _Handoff:
    """Stands in for the subscription's ``asyncio.Queue``: each message goes to the handler."""

    __slots__ = ("_handler", "_sub")

    def __init__(self, sub: Subscription, handler: Handler) -> None:
        self._sub = sub
        self._handler = handler

    def put_nowait(self, msg: Msg) -> None:
        self._sub._pending_size -= len(msg.data)  # handed over, so no longer pending
        try:
            self._handler(msg)
        except Exception:  # never into nats-py's reading task
            log.exception("handling a message on %s failed", msg.subject)

    # The rest of the queue's interface that nats-py uses on a subscription without a
    # callback: nothing is ever waiting here.

    def empty(self) -> bool:
        return True

    def qsize(self) -> int:
        return 0

    def task_done(self) -> None:
        pass

    async def join(self) -> None:
        pass


def _takes_handoff(sub: Subscription) -> bool:
    return isinstance(getattr(sub, "_pending_queue", None), asyncio.Queue) and hasattr(
        sub, "_message_iterator"
    )


async def subscribe(nc: Client, subject: str, handler: Handler) -> Subscription:
    """Subscribe ``subject``; ``handler`` gets every message, synchronously."""
    sub = await nc.subscribe(subject)
    if not _takes_handoff(sub):
        log.warning("nats-py has changed: one task per subscription again (%s)", subject)
        await sub.unsubscribe()

        async def callback(msg: Msg) -> None:
            handler(msg)

        return await nc.subscribe(subject, cb=callback)
    queue: asyncio.Queue[Msg] = sub._pending_queue
    handoff = _Handoff(sub, handler)
    sub._pending_queue = handoff  # type: ignore[assignment]
    # Its iterator holds the queue too; nobody iterates this subscription.
    sub._message_iterator = None
    while not queue.empty():  # arrived while subscribe() returned: hand it over too
        handoff.put_nowait(queue.get_nowait())
    return sub
