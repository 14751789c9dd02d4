"""``oye inject-api``: settings -> HTTP server (its lifespan opens NATS) -> signal -> stop.

:func:`serve` runs the API in-process until an event is set, for the CLI supervisor and
tests; :func:`main` runs it as a program, turning SIGTERM/SIGINT into that event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn

from oye_api.app import create_app
from oye_shared.http_guard import ConnectionLimits, guarded_http
from oye_shared.service import run_service
from oye_shared.settings import Settings

log = logging.getLogger(__name__)

#: How long open HTTP requests (a waiting injection, say) may take to finish on shutdown.
SHUTDOWN_DEADLINE = 5


class ApiStartError(RuntimeError):
    """The HTTP server could not start (port taken, or the app's startup failed)."""


class _Server(uvicorn.Server):
    """uvicorn that leaves signals to its caller and reports when it is listening."""

    def __init__(self, config: uvicorn.Config, started: asyncio.Event | None) -> None:
        super().__init__(config)
        self._started_event = started

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the caller owns SIGTERM/SIGINT and sets the stop event

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            for listener in sockets or []:
                host, port = listener.getsockname()[:2]
                log.info("inject-api listening on http://%s:%d", host, port)
            if self._started_event is not None:
                self._started_event.set()


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family)
    except OSError as exc:
        raise ApiStartError(
            f"inject-api cannot listen on {host}:{port} (OYE_BIND_HOST/OYE_HTTP_PORT): {exc}"
        ) from exc
    # create_server leaves the socket's protocol field at 0, so asyncio does not set
    # TCP_NODELAY itself: without it every response waits ~40 ms for delayed ACKs.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


async def serve(
    settings: Settings, *, stop: asyncio.Event, started: asyncio.Event | None = None
) -> None:
    """Serve the API on ``OYE_BIND_HOST:OYE_HTTP_PORT`` until ``stop`` is set.

    ``started`` is set once NATS is open and the port is listening. On stop: no new
    connections, open requests get :data:`SHUTDOWN_DEADLINE` seconds, then NATS drains.
    """
    sock = _listen(settings.bind_host, settings.http_port)
    config = uvicorn.Config(
        create_app(settings),
        # Connections per address and the time to send a request head, as for chargers.
        http=guarded_http(ConnectionLimits.from_settings(settings)),
        log_config=None,  # our logging set-up (or the caller's) applies
        lifespan="on",
        timeout_graceful_shutdown=SHUTDOWN_DEADLINE,
    )
    server = _Server(config, started)

    async def run_server() -> None:
        try:
            await server.serve(sockets=[sock])
        except SystemExit as exc:  # how uvicorn reports a failed startup
            raise ApiStartError(f"inject-api failed to start (exit code {exc.code})") from None

    serving = asyncio.create_task(run_server(), name="inject-api-http")
    stopping = asyncio.create_task(stop.wait(), name="inject-api-stop")
    try:
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        server.should_exit = True
        stopping.cancel()
        try:
            await serving
        finally:
            sock.close()
    log.info("inject-api stopped")


def main() -> None:
    run_service(serve, fatal=(ApiStartError,))


if __name__ == "__main__":
    main()
