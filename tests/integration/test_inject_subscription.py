"""A charger's inject subject: live on nats-server before the relay answers the charger
anything (an injection sent the moment its boot is answered finds it), and its holder
tells the charger's state on it."""

from __future__ import annotations

import asyncio
import json

import nats.errors
import pytest
from nats.aio.client import Client
from websockets.asyncio.client import connect

from oye_cli.nats_server import NatsServer
from oye_shared.inject import QUERY, STATE_QUERY, InjectReply
from oye_shared.settings import Settings
from oye_shared.state import ChargerState, ChargerStatus
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


async def test_the_holder_tells_the_chargers_state_on_its_inject_subject(
    settings: Settings, nc: Client
) -> None:
    """An ``Oye-Query: state`` request gets the state the relay holds now, without a
    CALL to the charger; a charger nobody holds has no responders."""
    subjects = Subjects(settings.subject_prefix)
    async with (
        relay_running(settings) as relay,
        watching(nc, subjects.events("CP-Q", "connected")) as connected,
        connect(relay.url("CP-Q"), subprotocols=["ocpp2.0.1"]) as charger,  # type: ignore[list-item]
    ):
        await connected.wait_for_count(1)
        query = {QUERY: STATE_QUERY}
        answer = await nc.request(subjects.inject("CP-Q"), b"", timeout=10, headers=query)
        state = ChargerState.model_validate_json(answer.data)
        assert state.charge_point_id == "CP-Q"
        assert state.status is ChargerStatus.ONLINE
        assert state.ocpp_version == "2.0.1"
        assert state.relay == settings.relay_id
        with pytest.raises(nats.errors.NoRespondersError):
            await nc.request(subjects.inject("NOBODY"), b"", timeout=10, headers=query)
        await charger.send('[2,"hb","Heartbeat",{}]')  # nothing was sent to the charger
        assert json.loads(await charger.recv())[:2] == [3, "hb"]
