"""One charger's injection endpoint on NATS: its subject, the requests, the replies.

Only the relay holding the charger subscribes to ``{prefix}.inject.{cp}``, so NATS itself
answers "no responders" for a charger nobody holds. Each request is served in its own
task (the lane, not the subscription, orders the calls), and replied to once; the
subscription itself has no task (:mod:`oye_relay.handoff`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from oye_relay.handoff import subscribe
from oye_shared.inject import InjectOutcome, InjectReply, InjectRequest, Problem

log = logging.getLogger(__name__)

DETACH_DEADLINE = 2.0


class InjectEndpoint:
    __slots__ = ("_requests", "_serve", "_subscription")

    def __init__(self, serve: Callable[[InjectRequest], Awaitable[InjectReply]]) -> None:
        self._serve = serve
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
        if self._requests is None:
            self._requests = set()
        task = asyncio.create_task(work)
        self._requests.add(task)
        task.add_done_callback(self._requests.discard)

    async def _answer(self, msg: Msg, request: InjectRequest) -> None:
        await _respond(msg, await self._serve(request))


async def _respond(msg: Msg, reply: InjectReply) -> None:
    try:
        await msg.respond(reply.model_dump_json(by_alias=True, exclude_none=True).encode())
    except Exception as exc:  # NATS trouble must not take the session down
        log.warning("could not answer an injection request: %s", exc)
