"""Running the relay in-process for a test, and watching what it publishes."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from nats.aio.client import Client
from nats.aio.msg import Msg

from oye_relay.main import run as run_relay
from oye_shared.settings import Settings


@dataclass
class RunningRelay:
    settings: Settings
    stop: asyncio.Event
    task: asyncio.Task[None]

    @property
    def base_url(self) -> str:
        return f"ws://127.0.0.1:{self.settings.ocpp_port}/ocpp"

    def url(self, charge_point_id: str) -> str:
        return f"{self.base_url}/{quote(charge_point_id, safe='')}"

    async def shutdown(self) -> None:
        self.stop.set()
        await self.task


@contextlib.asynccontextmanager
async def service_running(
    run: Callable[..., Coroutine[Any, Any, None]], settings: Settings
) -> AsyncIterator[tuple[asyncio.Event, asyncio.Task[None]]]:
    """Run a service's ``run(settings, stop=, started=)`` until the block ends; it has
    started (or raised why it could not) when the block begins."""
    stop, started = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run(settings, stop=stop, started=started))
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()  # raises why it could not start
    try:
        yield stop, task
    finally:
        if not task.done():
            stop.set()
            await task


@contextlib.asynccontextmanager
async def relay_running(settings: Settings) -> AsyncIterator[RunningRelay]:
    """Start the relay with these settings; stop it cleanly at the end."""
    async with service_running(run_relay, settings) as (stop, task):
        yield RunningRelay(settings, stop, task)


@dataclass
class Watcher:
    """Collects every message on a NATS subject, and lets a test await them in order."""

    messages: list[Msg] = field(default_factory=list)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def on_message(self, msg: Msg) -> None:
        async with self._arrived:
            self.messages.append(msg)
            self._arrived.notify_all()

    async def wait_for_count(self, count: int, seconds: float = 10.0) -> list[Msg]:
        async with asyncio.timeout(seconds), self._arrived:
            await self._arrived.wait_for(lambda: len(self.messages) >= count)
        return list(self.messages)

    async def wait_for(self, predicate: Any, seconds: float = 10.0) -> Msg:
        async with asyncio.timeout(seconds), self._arrived:
            await self._arrived.wait_for(lambda: any(predicate(m) for m in self.messages))
        return next(m for m in self.messages if predicate(m))

    def bodies(self) -> list[str]:
        return [m.data.decode() for m in self.messages]


@contextlib.asynccontextmanager
async def watching(nc: Client, subject: str) -> AsyncIterator[Watcher]:
    watcher = Watcher()
    sub = await nc.subscribe(subject, cb=watcher.on_message)
    # nats-py sends PING ahead of the queued SUB; the second round trip confirms the SUB.
    await nc.flush()
    await nc.flush()
    try:
        yield watcher
    finally:
        await sub.unsubscribe()


def event_body(msg: Msg) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(msg.data)
    return body


async def eventually(check: Any, seconds: float = 10.0, every: float = 0.02) -> Any:
    """Call ``check()`` (awaiting it, if it is a coroutine function) until it returns a
    truthy value; for external state that sends no notification (a stream's
    configuration, a row in a database, a transport's reading state)."""
    async with asyncio.timeout(seconds):
        while True:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return result
            await asyncio.sleep(every)
