"""One charger's injection endpoint on NATS: its subject, the requests, the replies.

Only the relay holding the charger subscribes to ``{prefix}.inject.{cp}``, so NATS itself
answers "no responders" for a charger nobody holds. Each request is served in its own
task (the lane, not the subscription, orders the calls), and replied to once; the
subscription itself has no task (:mod:`oye_relay.handoff`).

A request with the ``Oye-Query: state`` header is answered with the charger's state as
its holder knows it now (the fleet's KV entry follows a moment later).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any, Protocol

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from oye_relay.handoff import subscribe
from oye_shared.inject import QUERY, STATE_QUERY, InjectOutcome, InjectReply, InjectRequest, Problem

log = logging.getLogger(__name__)

DETACH_DEADLINE = 2.0


class Holder(Protocol):
    """The charger's session, as its endpoint needs it."""

    async def inject(self, request: InjectRequest) -> InjectReply: ...
    def state_json(self) -> bytes: ...


class InjectEndpoint:
    __slots__ = ("_holder", "_requests", "_subscription")

    def __init__(self, holder: Holder) -> None:
        self._holder = holder
        self._subscription: Subscription | None = None
        #: Requests being served; created with the first (most chargers never get one).
        self._requests: set[asyncio.Task[None]] | None = None

    async def attach(self, nc: Client, subject: str) -> None:
        if self._subscription is None:
            self._subscription = await subscribe(nc, subject, self._on_request)

    async def detach(self) -> None:
        """Stop taking requests; give those in progress a moment to answer."""
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
        if self._requests:
            await asyncio.wait(self._requests, timeout=DETACH_DEADLINE)

    def _on_request(self, msg: Msg) -> None:
        """Called from NATS's reading task: validate, then answer in a task of its own."""
        if msg.headers and msg.headers.get(QUERY) == STATE_QUERY:
            self._track(_respond_with(msg, self._holder.state_json()))
            return
        try:
            request = InjectRequest.model_validate_json(msg.data)
        except ValidationError as exc:
            problems = [
                Problem(path="$." + ".".join(str(part) for part in e["loc"]), message=e["msg"])
                for e in exc.errors()
            ]
            work = _respond(msg, InjectReply(outcome=InjectOutcome.INVALID, problems=problems))
        else:
            work = self._answer(msg, request)
        self._track(work)

    def _track(self, work: Coroutine[Any, Any, None]) -> None:
        if self._requests is None:
            self._requests = set()
        task = asyncio.create_task(work)
        self._requests.add(task)
        task.add_done_callback(self._requests.discard)

    async def _answer(self, msg: Msg, request: InjectRequest) -> None:
        await _respond(msg, await self._holder.inject(request))


async def _respond(msg: Msg, reply: InjectReply) -> None:
    await _respond_with(msg, reply.model_dump_json(by_alias=True, exclude_none=True).encode())


async def _respond_with(msg: Msg, data: bytes) -> None:
    try:
        await msg.respond(data)
    except Exception as exc:  # NATS trouble must not take the session down
        log.warning("could not answer an injection request: %s", exc)
