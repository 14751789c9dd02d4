"""Knowing that nats-server has processed what the relay queued: one PING for many waiters.

A charger's inject subscription must be live on the server before the relay answers
anything the charger sends: a script that injects as soon as the charger has booted would
otherwise hear "no responders" (the API's 404), as nats-py's ``subscribe`` only queues the
``SUB``. The server handles one connection's commands in order, so the PONG to a PING
written after the ``SUB`` confirms it. In a storm, every charger whose ``SUB`` was queued
before a round's PING shares that round: one round trip at a time, not one per charger.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from nats.aio.client import Client

from oye_shared.bus import confirmed

log = logging.getLogger(__name__)

#: How long a connect waits for a round at most: a NATS that is connected but does not
#: answer must not hold chargers for long (they are served, injections may miss them).
WAIT = 1.0


class Confirmations:
    __slots__ = ("_client", "_next", "_task")

    def __init__(self, client: Callable[[], Client | None]) -> None:
        self._client = client  # the relay's NATS connection, once there is one
        #: The round that will confirm what is queued now (None: nobody waits for one).
        self._next: asyncio.Future[bool] | None = None
        self._task: asyncio.Task[None] | None = None

    async def confirmed(self) -> bool:
        """Return once the server has processed every command queued on the client before
        this call: True; False when NATS is not connected or did not answer within
        :data:`WAIT` (a reconnecting nats-py sends the subscriptions again itself)."""
        nc = self._client()
        if nc is None or not nc.is_connected:
            return False
        waiter = self._next
        if waiter is None:
            waiter = self._next = asyncio.get_running_loop().create_future()
            if self._task is None:
                self._task = asyncio.create_task(self._rounds(nc), name="NATS confirmations")
        # Not ``await waiter``: a cancelled caller would cancel the round of all others.
        await asyncio.wait((waiter,), timeout=WAIT)
        return waiter.result() if waiter.done() else False

    async def _rounds(self, nc: Client) -> None:
        waiter = None
        try:
            while (waiter := self._next) is not None:
                self._next = None  # who comes now was not queued before this round's PING
                waiter.set_result(await _round(nc))
        finally:
            self._task = None
            for left in (waiter, self._next):  # cancelled (the loop ends): nobody hangs
                if left is not None and not left.done():
                    left.set_result(False)
            self._next = None


async def _round(nc: Client) -> bool:
    try:
        await confirmed(nc)
    except Exception as exc:  # NATS down or slow: the connect goes on without
        log.debug("NATS did not confirm the subscriptions: %r", exc)
        return False
    return True
