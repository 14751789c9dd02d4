"""Handing nats-py finished ``HPUB`` commands (``oye_shared.bus.written`` tells when they
are on the socket).

Why private attributes: the relay encodes every message once, when it is queued
(:mod:`oye_relay.wire`), while nats-py's public ``publish`` takes a header dict and builds
the command again (a subject check, then a regex, ``strip`` and ``translate`` per header)
for every message. Inside ``publish``, nats-py 2.x (``>=2.9,<3`` in pyproject.toml) queues
the finished command with ``Client._send_command`` and wakes its flusher task with
``Client._flush_pending``; :class:`CommandWriter` calls the same two, once per batch.
``tests/integration/test_nats_commands.py`` pins that a real nats-server then delivers
exactly the subject, headers and body, and that a client without the two attributes (a
future nats-py) gets the same through the public ``publish``, the fallback here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from nats.aio.client import Client
from nats.errors import (
    ConnectionClosedError,
    ConnectionDrainingError,
)

from oye_relay.wire import parse_hpub


class CommandWriter:
    """Writes batches of ``HPUB`` commands to one nats-py client, in order."""

    def __init__(self, nc: Client) -> None:
        self._nc = nc
        send: Callable[[bytes], Awaitable[None]] | None = getattr(nc, "_send_command", None)
        kick: Callable[[], Awaitable[object]] | None = getattr(nc, "_flush_pending", None)
        if not (callable(send) and callable(kick)):
            send = kick = None
        self._send = send
        self._kick = kick

    @property
    def raw(self) -> bool:
        """False when this nats-py lacks the private path: messages go through ``publish``."""
        return self._send is not None

    async def write(self, commands: Sequence[bytes]) -> None:
        """Queue ``commands`` in the client, in order, and wake its flusher."""
        nc = self._nc
        send, kick = self._send, self._kick
        if send is None or kick is None:
            for command in commands:
                subject, headers, body = parse_hpub(command)
                await nc.publish(subject, body, headers=headers)
            return
        # What publish checks before queueing (the payload size is the caller's).
        if nc.is_closed:
            raise ConnectionClosedError
        if nc.is_draining_pubs:
            raise ConnectionDrainingError
        await send(b"".join(commands))
        await kick()
