"""NATS helpers every service uses: connect (and keep reconnecting), the traffic stream.

Services connect with :func:`connect`, which retries the first connection too, so a
service started before NATS (or while NATS restarts) comes up and catches up by itself.
"""

from __future__ import annotations

import asyncio
import logging

import nats
from nats.aio.client import Client
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError

from oye_shared.settings import Settings
from oye_shared.subjects import Subjects

log = logging.getLogger(__name__)

DUPLICATE_WINDOW_SECONDS = 120.0


async def connect(settings: Settings, *, name: str) -> Client:
    """Connect to NATS, retrying until it answers; later drops reconnect forever."""

    async def on_error(exc: Exception) -> None:
        log.warning("NATS error: %s", exc)

    async def on_disconnected() -> None:
        if nc.is_closed or nc.is_draining:
            log.debug("NATS connection closed")
        else:
            log.warning("NATS disconnected; reconnecting")

    async def on_reconnected() -> None:
        log.info("NATS reconnected")

    delay = 0.2
    nc = Client()
    while True:
        nc = Client()
        try:
            await nc.connect(
                servers=settings.nats_servers,
                name=f"oye-{name}",
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,  # type: ignore[arg-type]  # nats-py accepts seconds as float
                connect_timeout=2,
                ping_interval=5,
                max_outstanding_pings=2,
                error_cb=on_error,
                disconnected_cb=on_disconnected,
                reconnected_cb=on_reconnected,
            )
            return nc
        except asyncio.CancelledError:
            # Cancelled mid-handshake (a quick shutdown): do not leave the socket open.
            await _close_quietly(nc)
            raise
        except (OSError, nats.errors.NoServersError, TimeoutError) as exc:
            await _close_quietly(nc)
            log.warning("NATS at %s not reachable (%s); retrying", settings.nats_servers, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


#: How often to look again while nats-py cannot write (the socket is full), and for how
#: long at most; how long a PONG may take.
WRITE_POLL = 0.001
WRITE_TIMEOUT = 2.0
CONFIRM_TIMEOUT = 2.0


async def written(nc: Client) -> None:
    """Return once nats-py has handed everything queued so far to its socket.

    nats-py writes queued commands (a ``SUB``, a ``PUB``) only when its flusher task runs,
    but ``flush()`` writes its PING straight to the socket: a PING sent before the flusher
    ran overtakes them, and its PONG confirms nothing of them. The flusher empties the
    whole queue in one write, so ``pending_data_size`` back at 0 means it went out. It
    runs first at the next turn of the loop: one ``sleep(0)`` is nearly always enough; if
    the socket is full, the flusher waits for it to drain and so do we, without spinning.
    """
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WRITE_TIMEOUT
    while nc.pending_data_size > 0:
        if not nc.is_connected:  # kept for the next connection; the caller retries
            raise nats.errors.ConnectionReconnectingError
        if loop.time() >= deadline:
            raise TimeoutError("nats-py did not write its queued commands in time")
        await asyncio.sleep(WRITE_POLL)


async def confirmed(nc: Client) -> None:
    """Return once nats-server has processed every command queued on ``nc`` so far (a
    subscription is live): a PING written after them, and its PONG."""
    await written(nc)
    await nc.flush(timeout=CONFIRM_TIMEOUT)  # type: ignore[arg-type]


def cancellation_checkpoint() -> None:
    """Raise CancelledError if this task was cancelled and the error got lost.

    nats-py swallows CancelledError inside publish (``_flush_pending``), so a task that was
    cancelled while publishing carries on as if nothing happened. Loops that call NATS
    call this after each round so that cancellation still ends them.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def close_connection(nc: Client, *, deadline: float = 5.0) -> None:
    """Drain (what is in flight goes out), then make sure the connection is closed.

    A drain can fail (NATS away, the deadline passes) and nats-py can raise a stray
    CancelledError when closing during a reconnection; whatever happens, the socket is
    closed at the end. A cancellation of the caller still propagates from the caller's
    own await points.
    """
    try:
        async with asyncio.timeout(deadline):
            await nc.drain()
    except (nats.errors.Error, OSError, TimeoutError, asyncio.CancelledError) as exc:
        log.debug("NATS drain incomplete (%r); closing", exc)
    if not nc.is_closed:
        try:
            await nc.close()
        except (nats.errors.Error, OSError, asyncio.CancelledError) as exc:
            log.debug("NATS close: %r", exc)


async def _close_quietly(nc: Client) -> None:
    try:
        await nc.close()
    except Exception as exc:  # closing a half-open client: nothing more to do
        log.debug("closing a NATS client that never connected: %r", exc)


def traffic_stream_config(settings: Settings) -> StreamConfig:
    subjects = Subjects(settings.subject_prefix)
    return StreamConfig(
        name=settings.stream_name,
        subjects=[subjects.all_frames, subjects.all_events],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=settings.stream_max_age,
        max_bytes=settings.stream_max_bytes,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
    )


async def ensure_traffic_stream(nc: Client, settings: Settings) -> None:
    """Create the stream that captures frames and events, or bring its limits up to date."""
    js = nc.jetstream()
    config = traffic_stream_config(settings)
    try:
        await js.add_stream(config)
    except BadRequestError:
        # It exists with another configuration: our settings are the truth.
        await js.update_stream(config)
