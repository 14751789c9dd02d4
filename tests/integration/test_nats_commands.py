"""nats-py's private command path, pinned against a real nats-server, and its fallback.

The relay hands nats-py finished HPUB commands through ``Client._send_command`` (see
``oye_relay.nats_commands``); if a nats-py release changes that, these tests fail.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import nats
import pytest
from nats.aio.client import Client

from oye_cli.nats_server import NatsServer
from oye_relay.nats_commands import CommandWriter
from oye_relay.wire import header_block, hpub
from oye_shared.bus import written

pytestmark = pytest.mark.integration

#: Messages as the relay makes them: many headers, text and binary bodies, values with
#: characters nats-py would rewrite (surrounding spaces, CR/LF), non-ASCII.
MESSAGES: list[tuple[str, bytes, dict[str, str]]] = [
    (
        "cmd.frames.CP-1.UPSTREAM",
        b'[2,"m1","Heartbeat",{}]',
        {"Oye-Direction": "UPSTREAM", "Oye-Charge-Point": "CP-1", "Nats-Msg-Id": "f1"},
    ),
    (
        "cmd.frames.CP%20\u00fc.DOWNSTREAM",
        '[3,"m1",{"x":"\u00e9"}]'.encode(),
        {
            "Oye-Charge-Point": "CP \u00fc",
            "Oye-Message-Id": " m\r\nX-Evil: 1 ",
            "Oye-Action": "",
        },
    ),
    ("cmd.binary", bytes(range(256)) + b"\r\n\r\n", {"Oye-Binary": "1"}),
    ("cmd.empty", b"", {"Seq": "4"}),
]
#: What a subscriber gets: nats-py's rewriting of the header values, and nothing more.
EXPECTED_HEADERS = [
    MESSAGES[0][2],
    {"Oye-Charge-Point": "CP \u00fc", "Oye-Message-Id": "m  X-Evil: 1", "Oye-Action": ""},
    {"Oye-Binary": "1"},
    {"Seq": "4"},
]


class PublicOnly:
    """A nats-py client seen through its public attributes only (a future nats-py)."""

    def __init__(self, nc: Client) -> None:
        self._nc = nc

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._nc, name)


@pytest.fixture
async def sender(nats_server: NatsServer) -> AsyncIterator[Client]:
    client = await nats.connect(nats_server.url)
    yield client
    await client.close()


async def deliver(nc: Client, writer: CommandWriter) -> list[tuple[str, bytes, Any]]:
    sub = await nc.subscribe("cmd.>")
    await nc.flush()
    await nc.flush()  # the second PING follows the SUB (see test_publisher_nats.subscribed)
    await writer.write([hpub(s, header_block(h), b) for s, b, h in MESSAGES])
    received = [await sub.next_msg(timeout=10) for _ in MESSAGES]
    with pytest.raises(nats.errors.TimeoutError):
        await sub.next_msg(timeout=0.2)
    return [(m.subject, m.data, m.headers) for m in received]


async def test_commands_through_the_private_path_arrive_exactly(nc: Client, sender: Client) -> None:
    """Subject, headers and body arrive as sent (values as nats-py's publish would send them)."""
    writer = CommandWriter(sender)
    assert writer.raw, "nats-py no longer has _send_command/_flush_pending: see nats_commands"
    assert await deliver(nc, writer) == expected()


async def test_the_same_messages_through_publish_when_the_private_path_is_missing(
    nc: Client, sender: Client
) -> None:
    """Without the private attributes the writer falls back to publish: the same result."""
    writer = CommandWriter(cast(Client, PublicOnly(sender)))
    assert not writer.raw
    assert await deliver(nc, writer) == expected()


def expected() -> list[tuple[str, bytes, Any]]:
    return [
        (subject, body, headers)
        for (subject, body, _), headers in zip(MESSAGES, EXPECTED_HEADERS, strict=True)
    ]


async def test_written_returns_once_the_client_has_nothing_pending(sender: Client) -> None:
    """After bus.written() the client's buffer is empty: a PING sent now follows the batch."""
    writer = CommandWriter(sender)
    await writer.write([hpub("cmd.x", header_block({"A": "1"}), b"x" * 100_000)] * 10)
    assert sender.pending_data_size > 0
    async with asyncio.timeout(10):
        await written(sender)
    assert sender.pending_data_size == 0
