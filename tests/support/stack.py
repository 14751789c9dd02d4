"""The whole stack in-process for a test: relay, inject-api (and what else has landed),
each on its own free port, sharing the test's nats-server."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from oye_api.main import serve as serve_api
from oye_shared.settings import Settings
from tests.support.relay import RunningRelay, relay_running, service_running

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
    async with service_running(serve_api, settings):
        yield


@contextlib.asynccontextmanager
async def stack_running(settings: Settings) -> AsyncIterator[Stack]:
    settings = settings.model_copy(update={"admin_password": ADMIN_PASSWORD})
    async with relay_running(settings) as relay, api_running(settings):
        yield Stack(settings, relay)
