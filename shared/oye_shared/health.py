"""``/metrics``, ``/livez`` and ``/readyz`` over HTTP, served inside the service's event loop.

A small Starlette app run by ``uvicorn.Server`` on a socket bound here, so a port of 0
lets the OS choose and :attr:`HealthServer.port` tells which it chose. The server only
reads: metrics are counted where frames pass and rendered when Prometheus scrapes.

* ``GET /livez``: 200 ``{"status": "alive"}`` whenever the event loop answers at all.
* ``GET /readyz``: 200 ``{"status": "ready"}``, or 503 ``{"status": "not ready",
  "reason": ...}`` with the first reason the service gives.
* ``GET /metrics``: the registry in the Prometheus text format (OpenMetrics if asked for).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator
from types import TracebackType
from typing import Self

import uvicorn
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from oye_shared.http_guard import ConnectionLimits, guarded_http

log = logging.getLogger(__name__)

#: Why the service is not ready, or None when it is.
Readiness = Callable[[], str | None]
SHUTDOWN_DEADLINE = 2
#: How long a scrape waits for state that must be fetched first (e.g. from NATS).
REFRESH_TIMEOUT = 2.0


class HealthServerError(RuntimeError):
    """The health and metrics port cannot be bound."""


def health_app(
    registry: CollectorRegistry,
    readiness: Readiness,
    *,
    refresh: Callable[[], Awaitable[None]] | None = None,
) -> Starlette:
    """The ASGI app; ``refresh`` runs before each scrape (bounded by a timeout)."""

    async def livez(request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(request: Request) -> Response:
        reason = readiness()
        if reason is None:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not ready", "reason": reason}, status_code=503)

    async def metrics(request: Request) -> Response:
        if refresh is not None:
            try:
                async with asyncio.timeout(REFRESH_TIMEOUT):
                    await refresh()
            except Exception as exc:  # a scrape still answers, with the last known values
                log.debug("metrics refresh failed: %r", exc)
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(registry), headers={"Content-Type": content_type})

    return Starlette(
        routes=[
            Route("/livez", livez, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ]
    )


class _Server(uvicorn.Server):
    """uvicorn that leaves signals to the service and says when it is listening."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the service owns SIGTERM/SIGINT

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.listening.set()


class HealthServer:
    """Serves :func:`health_app` on ``host:port`` while the ``async with`` block runs."""

    def __init__(
        self,
        app: Starlette,
        *,
        host: str,
        port: int,
        name: str,
        limits: ConnectionLimits | None = None,
    ) -> None:
        self.app = app
        self.limits = limits
        self.host = host
        self.requested_port = port
        self.name = name
        self.port: int | None = None
        self._socket: socket.socket | None = None
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Bind and serve; raises :class:`HealthServerError` if the port is taken."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            sock = socket.create_server((self.host, self.requested_port), family=family)
        except OSError as exc:
            raise HealthServerError(
                f"{self.name} cannot serve /metrics on {self.host}:{self.requested_port}: {exc}"
            ) from exc
        self._socket = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            http=guarded_http(self.limits) if self.limits is not None else "auto",
            lifespan="off",
            log_config=None,  # the service's logging applies
            access_log=False,
            ws="none",
            server_header=False,
            timeout_graceful_shutdown=SHUTDOWN_DEADLINE,
        )
        server = self._server = _Server(config)
        self._task = asyncio.create_task(self._serve(server, sock), name=f"{self.name} health")
        listening = asyncio.create_task(server.listening.wait())
        try:
            await asyncio.wait({self._task, listening}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            listening.cancel()
        if self._task.done():
            task, self._task, self._server, self._socket = self._task, None, None, None
            sock.close()
            task.result()  # raises why it could not start
            raise HealthServerError(f"{self.name}: the health server stopped at start")
        log.info(
            "%s: /metrics, /livez and /readyz on http://%s:%d", self.name, self.host, self.port
        )

    async def _serve(self, server: _Server, sock: socket.socket) -> None:
        try:
            await server.serve(sockets=[sock])
        except SystemExit as exc:  # how uvicorn reports a failed startup
            raise HealthServerError(f"{self.name}: health server failed ({exc.code})") from None

    async def stop(self) -> None:
        """Stop serving (idempotent); open requests get :data:`SHUTDOWN_DEADLINE` seconds."""
        server, task, sock = self._server, self._task, self._socket
        self._server = self._task = self._socket = None
        if server is not None:
            server.should_exit = True
        if task is not None:
            try:
                await task
            except Exception as exc:  # stopping anyway: say what went wrong, do not raise
                log.error("%s: the health server failed: %r", self.name, exc)
        if sock is not None:
            sock.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
