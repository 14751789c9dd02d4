"""The whole stack in-process for a test: relay, inject-api (and what else has landed),
each on its own free port, sharing the test's nats-server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from oye_api.main import serve as serve_api
from oye_shared.settings import Settings
from tests.support.relay import RunningRelay, relay_running

ADMIN_PASSWORD = "test-only-admin-password"


@dataclass
class Stack:
    settings: Settings
    relay: RunningRelay

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.http_port}"

    def client(self, password: str = ADMIN_PASSWORD) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.api_url, auth=("admin", password), timeout=60)


@contextlib.asynccontextmanager
async def api_running(settings: Settings) -> AsyncIterator[None]:
    stop, started = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve_api(settings, stop=stop, started=started))
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()
    try:
        yield
    finally:
        stop.set()
        await task


@contextlib.asynccontextmanager
async def stack_running(settings: Settings) -> AsyncIterator[Stack]:
    settings = settings.model_copy(update={"admin_password": ADMIN_PASSWORD})
    async with relay_running(settings) as relay, api_running(settings):
        yield Stack(settings, relay)
