"""Run the inject-api in-process for a test, and play the relay's side of injection.

:class:`FakeRelay` is not a mock of NATS: it subscribes on the real ``{prefix}.inject.{cp}``
subject and answers with :class:`InjectReply` messages, exactly the relay's contract.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType

import httpx
from fastapi import FastAPI
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.kv import KeyValue

from oye_api.app import create_app
from oye_shared.bus import confirmed
from oye_shared.inject import InjectReply, InjectRequest
from oye_shared.settings import Settings
from oye_shared.state import bucket_name
from oye_shared.subjects import Subjects

PASSWORD = "correct horse battery staple"


def with_admin(settings: Settings, password: str | None = PASSWORD, **changes: object) -> Settings:
    return settings.model_copy(update={"admin_password": password, **changes})


def client(
    app: FastAPI,
    *,
    auth: tuple[str, str] | None = ("admin", PASSWORD),
    address: str = "127.0.0.1",
) -> httpx.AsyncClient:
    """An HTTP client that talks to the app directly, as if from ``address``."""
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://api", auth=auth)


@contextlib.asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app with its lifespan entered (NATS open, buckets ready, admin created)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@contextlib.asynccontextmanager
async def running_api(
    settings: Settings, *, auth: tuple[str, str] | None = ("admin", PASSWORD)
) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(settings) as app, client(app, auth=auth) as http:
        yield http


async def bucket(nc: Client, settings: Settings, name: str) -> KeyValue:
    return await nc.jetstream().key_value(bucket_name(settings.subject_prefix, name))


Answer = Callable[[InjectRequest], Awaitable[InjectReply | None]]


class FakeRelay:
    """Answers inject requests for one charger; ``None`` from ``answer`` means silence."""

    def __init__(self, nc: Client, settings: Settings, charge_point_id: str, answer: Answer):
        self._nc = nc
        self.subject = Subjects(settings.subject_prefix).inject(charge_point_id)
        self._answer = answer
        self.requests: asyncio.Queue[InjectRequest] = asyncio.Queue()
        self._sub: Subscription | None = None

    async def _on_request(self, msg: Msg) -> None:
        request = InjectRequest.model_validate_json(msg.data)
        self.requests.put_nowait(request)
        reply = await self._answer(request)
        if reply is not None:
            await msg.respond(reply.model_dump_json(by_alias=True, exclude_none=True).encode())

    async def __aenter__(self) -> FakeRelay:
        self._sub = await self._nc.subscribe(self.subject, cb=self._on_request)
        await confirmed(self._nc)  # the server knows the subscription before the API asks
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()


def answering(reply: InjectReply) -> Answer:
    async def answer(request: InjectRequest) -> InjectReply:
        return reply

    return answer
