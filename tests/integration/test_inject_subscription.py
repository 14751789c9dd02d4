"""A charger's inject subscription is live on nats-server before the relay answers the
charger anything: an injection sent the moment its boot is answered finds it."""

from __future__ import annotations

import asyncio
import json

import pytest
from nats.aio.client import Client
from websockets.asyncio.client import connect

from oye_cli.nats_server import NatsServer
from oye_shared.inject import InjectReply
from oye_shared.settings import Settings
from oye_shared.subjects import Subjects
from tests.support.relay import relay_running, watching
from tests.support.tcp_gate import TcpGate

pytestmark = pytest.mark.integration

BOOT = [2, "boot-1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]


async def test_the_boot_is_answered_only_once_nats_has_the_inject_subscription(
    settings: Settings, nats_server: NatsServer, nc: Client
) -> None:
    """The relay's writes to NATS are held after its SUB: the charger's boot stays
    unanswered until NATS has confirmed it (a PING after the SUB, its PONG), and an
    injection sent right after the answer reaches the charger instead of "no responders"."""
    assert nats_server.port is not None
    subjects = Subjects(settings.subject_prefix)
    async with (
        TcpGate(nats_server.port).running() as gate,
        relay_running(settings.model_copy(update={"nats_url": gate.url})) as relay,
    ):
        async with (
            watching(nc, subjects.events("WARM", "connected")) as warm,
            connect(relay.url("WARM"), subprotocols=["ocpp1.6"]),  # type: ignore[list-item]
        ):
            await warm.wait_for_count(1)  # the relay is on NATS
        gate.hold()
        async with connect(relay.url("CP-S"), subprotocols=["ocpp1.6"]) as charger:  # type: ignore[list-item]
            await charger.send(json.dumps(BOOT))
            answer = asyncio.create_task(charger.recv())
            subscribed = await gate.seen(f"SUB {subjects.inject('CP-S')} ".encode())
            await gate.seen(b"PING\r\n", after=subscribed)
            assert not answer.done()  # NATS has not seen the SUB: the charger waits
            gate.release()
            assert json.loads(await answer)[:2] == [3, "boot-1"]

            request = nc.request(
                subjects.inject("CP-S"),
                json.dumps({"action": "DataTransfer", "payload": {"vendorId": "V"}}).encode(),
                timeout=10,
            )
            injected = asyncio.create_task(request)
            call = json.loads(await charger.recv())
            assert call[2] == "DataTransfer"
            await charger.send(json.dumps([3, call[1], {"status": "Accepted"}]))
            reply = InjectReply.model_validate_json((await injected).data)
            assert reply.outcome == "result"
            assert reply.frame is not None
            assert json.loads(reply.frame)[2] == {"status": "Accepted"}
