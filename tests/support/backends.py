"""One charger, several backends: a primary CSMS and a secondary one, each a real OCPP peer
(``CsmsServer``), behind a relay run in-process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client

from oye_cli.simulator.charger import SimulatedCharger
from oye_cli.simulator.frame_log import RecordedFrame
from oye_shared.backends import SecondaryBackend
from oye_shared.frames import MessageType
from oye_shared.settings import Settings
from tests.peers.csms import ChargerHandle, CsmsServer
from tests.support.relay import Watcher, relay_running, watching

PRIMARY_FIRST_TX = 100
SECONDARY_FIRST_TX = 900


@dataclass
class Setup:
    primary: CsmsServer
    secondary: CsmsServer
    relay: Any
    bus: Watcher
    #: The relay's settings (the secondary ``ha`` included), to start another relay.
    settings: Settings


@asynccontextmanager
async def two_backends(settings: Settings, nc: Client, **backend: Any) -> AsyncIterator[Setup]:
    async with (
        CsmsServer(first_transaction_id=PRIMARY_FIRST_TX) as primary,
        CsmsServer(first_transaction_id=SECONDARY_FIRST_TX) as secondary,
    ):
        ha = SecondaryBackend.model_validate({"name": "ha", "url": secondary.url, **backend})
        configured = settings.model_copy(
            update={
                "upstream_url": primary.url,
                "secondary_backends": [ha],
                "inject_timeout": 5.0,
                "offline_id_tags": "TAG-1",
            }
        )
        async with relay_running(configured) as relay, watching(nc, "oye.>") as bus:
            yield Setup(primary, secondary, relay, bus, configured)


@asynccontextmanager
async def charger_on(
    setup: Setup, cp: str, version: str
) -> AsyncIterator[tuple[SimulatedCharger, ChargerHandle, ChargerHandle]]:
    async with SimulatedCharger(setup.relay.url(cp), cp, version=version) as charger:  # type: ignore[arg-type]
        async with asyncio.timeout(10):
            primary = await setup.primary.wait_for_charger(cp)
            secondary = await setup.secondary.wait_for_charger(cp)
        yield charger, primary, secondary


def calls_received(handle: ChargerHandle) -> list[str]:
    return [
        f.action or ""
        for f in handle.frames.frames
        if f.direction == "received" and f.message_type is MessageType.CALL
    ]


async def received(handle: ChargerHandle, action: str) -> RecordedFrame:
    """Wait until the backend has received an ``action`` CALL."""
    async with asyncio.timeout(10):
        return await handle.frames.wait_for(
            lambda f: f.action == action and f.message_type is MessageType.CALL
        )


def most_outstanding(frames: list[RecordedFrame]) -> int:
    """The most CALLs the charger ever had unanswered towards it at once."""
    outstanding: set[str] = set()
    most = 0
    for frame in frames:
        if frame.direction == "received" and frame.message_type is MessageType.CALL:
            outstanding.add(frame.message_id or "")
            most = max(most, len(outstanding))
        elif frame.direction == "sent" and frame.message_type in (
            MessageType.CALLRESULT,
            MessageType.CALLERROR,
        ):
            outstanding.discard(frame.message_id or "")
    return most
