"""The relay between real OCPP peers: the simulated charger and the test CSMS, 1.6 and 2.0.1.

Each side's frame log is the wire as that peer saw it, so "relayed byte for byte" reads as:
what one peer sent is, text for text and in order, what the other received.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201
from websockets.exceptions import InvalidStatus

from oye_cli.simulator import (
    SUBPROTOCOL,
    SimulatedCharger,
    Version,
    basic_authorization,
    is_call,
)
from oye_shared import headers as h
from oye_shared.frames import MessageType
from oye_shared.settings import Settings
from oye_shared.subjects import Direction, Subjects, encode_token
from tests.peers.csms import ChargerHandle, CsmsServer
from tests.support.relay import relay_running, watching

pytestmark = pytest.mark.integration

WAIT = 10.0
CP = "CP-OCPP-1"
VERSIONS: list[Version] = ["1.6", "2.0.1"]
SUBJECTS = Subjects("oye")
RESET = {"1.6": call16.Reset(type="Soft"), "2.0.1": call201.Reset(type="OnIdle")}
HEADERS = (h.DIRECTION, h.CHARGE_POINT, h.MESSAGE_TYPE, h.MESSAGE_ID, h.ACTION, h.SUBPROTOCOL)


@contextlib.asynccontextmanager
async def through_relay(
    settings: Settings, csms: CsmsServer, cp_id: str = CP, **options: Any
) -> AsyncIterator[tuple[SimulatedCharger, ChargerHandle]]:
    """A relay in front of ``csms``, a simulated charger on it, and the CSMS's handle."""
    upstream = settings.model_copy(update={"upstream_url": csms.url})
    async with (
        relay_running(upstream) as relay,
        SimulatedCharger(relay.url(cp_id), cp_id, **options) as charger,
    ):
        async with asyncio.timeout(WAIT):
            handle = await csms.wait_for_charger(cp_id)
        yield charger, handle


def assert_relayed_exactly(charger: SimulatedCharger, handle: ChargerHandle) -> None:
    """Each peer received, text for text and in order, what the other one sent."""
    assert handle.frames.received == charger.sent
    assert charger.received == handle.frames.sent


def sent_actions(frames: Any) -> list[str | None]:
    return [f.action for f in frames.find(is_call(), direction="sent")]


async def read_heartbeat_interval(handle: ChargerHandle, version: Version) -> str:
    """The CSMS reads the charger's heartbeat interval: GetConfiguration or GetVariables."""
    if version == "1.6":
        config = await handle.call(call16.GetConfiguration(key=["HeartbeatInterval", "Nope"]))
        assert config.unknown_key == ["Nope"]
        (key,) = config.configuration_key
        return str(key["value"])
    wanted = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
    (variable,) = (await handle.call(call201.GetVariables([wanted]))).get_variable_result
    assert variable["attribute_status"] == "Accepted"
    return str(variable["attribute_value"])


def wire_as_nats(charger: SimulatedCharger) -> list[tuple[str, str, dict[str, str | None]]]:
    """What NATS should carry for the charger's frame log: subject, body, headers, in order."""
    log = charger.frames.frames
    actions = {f.message_id: f.action for f in log if f.message_type is MessageType.CALL}
    expected = []
    for frame in log:
        assert frame.message_type is not None
        direction = Direction.UPSTREAM if frame.direction == "sent" else Direction.DOWNSTREAM
        values = (
            direction.value,
            charger.charge_point_id,
            frame.message_type.name,
            frame.message_id,
            actions[frame.message_id],
            charger.subprotocol,
        )
        subject = SUBJECTS.frames(charger.charge_point_id, direction)
        expected.append((subject, frame.text, dict(zip(HEADERS, values, strict=True))))
    return expected


def as_seen_on_nats(messages: list[Msg]) -> list[tuple[str, str, dict[str, str | None]]]:
    return [
        (m.subject, m.data.decode(), {k: (m.headers or {}).get(k) for k in HEADERS})
        for m in messages
    ]


@pytest.mark.parametrize("version", VERSIONS)
async def test_the_chargers_messages_reach_the_csms_byte_exact_and_get_its_answers(
    settings: Settings, version: Version
) -> None:
    """Boot, Heartbeat, StatusNotification and MeterValues cross and are answered."""
    async with CsmsServer() as csms, through_relay(settings, csms, version=version) as (cp, handle):
        boot = await cp.boot()
        assert (boot.status, boot.interval) == ("Accepted", 300)
        assert (await cp.heartbeat()).current_time.endswith("Z")
        await cp.status(1, "Available")
        await cp.meter_values(1, energy_wh=1234, power_w=7400.5)
        assert_relayed_exactly(cp, handle)
    assert handle.subprotocol == cp.subprotocol == SUBPROTOCOL[version]
    assert sent_actions(cp.frames) == [
        "BootNotification",
        "Heartbeat",
        "StatusNotification",
        "MeterValues",
    ]
    (status,) = handle.calls("StatusNotification")
    if version == "1.6":
        assert (status["connectorId"], status["status"], status["errorCode"]) == (
            1,
            "Available",
            "NoError",
        )
    else:
        assert (status["evseId"], status["connectorId"], status["connectorStatus"]) == (
            1,
            1,
            "Available",
        )
    (meter,) = handle.calls("MeterValues")
    assert len(meter["meterValue"][0]["sampledValue"]) == 2


async def test_a_201_transaction_reaches_the_csms_byte_exact_and_is_accepted(
    settings: Settings,
) -> None:
    """TransactionEvent Started, Updated and Ended cross in order and get idTokenInfo back."""
    async with CsmsServer() as csms, through_relay(settings, csms, version="2.0.1") as (cp, handle):
        started = await cp.transaction_event("Started", id_tag="TAG-1", charging_state="Charging")
        assert started.id_token_info == {"status": "Accepted"}
        await cp.transaction_event("Updated", trigger_reason="MeterValuePeriodic", energy_wh=1500)
        await cp.transaction_event("Ended", energy_wh=3000)
        assert_relayed_exactly(cp, handle)
    events = handle.calls("TransactionEvent")
    assert [(e["eventType"], e["seqNo"]) for e in events] == [
        ("Started", 0),
        ("Updated", 1),
        ("Ended", 2),
    ]
    assert len({e["transactionInfo"]["transactionId"] for e in events}) == 1


@pytest.mark.parametrize("version", VERSIONS)
async def test_the_csmss_calls_reach_the_charger_byte_exact_and_get_its_answers(
    settings: Settings, version: Version
) -> None:
    """1.6 GetConfiguration and Reset, 2.0.1 GetVariables and Reset, answered through the relay."""
    async with CsmsServer() as csms, through_relay(settings, csms, version=version) as (cp, handle):
        assert await read_heartbeat_interval(handle, version) == "300"
        assert (await handle.call(RESET[version])).status == "Accepted"
        assert_relayed_exactly(cp, handle)
    read = "GetConfiguration" if version == "1.6" else "GetVariables"
    assert sent_actions(handle.frames) == [read, "Reset"]
    assert cp.state.resets == [RESET[version].type]


async def test_a_charger_offering_201_then_16_speaks_16_to_a_16_only_csms(
    settings: Settings,
) -> None:
    """The CSMS picks ocpp1.6 from the charger's list; both legs and both peers speak 1.6."""
    offer = ["ocpp2.0.1", "ocpp1.6"]
    async with (
        CsmsServer(versions=("ocpp1.6",)) as csms,
        through_relay(settings, csms, subprotocols=offer) as (cp, handle),
    ):
        assert cp.subprotocol == handle.subprotocol == "ocpp1.6"
        assert handle.headers["Sec-WebSocket-Protocol"] == "ocpp2.0.1, ocpp1.6"
        assert (await cp.boot()).status == "Accepted"
        assert await read_heartbeat_interval(handle, "1.6") == "300"
        assert_relayed_exactly(cp, handle)


async def test_basic_auth_reaches_the_csms_and_a_wrong_password_gets_its_401(
    settings: Settings,
) -> None:
    """The right password works end to end; a wrong one is refused with 401 at the charger."""
    password = "s3cret-password-16"
    async with (
        CsmsServer(passwords={CP: password}) as csms,
        through_relay(settings, csms, password=password) as (cp, handle),
    ):
        assert (await cp.boot()).status == "Accepted"
        assert handle.headers["Authorization"] == basic_authorization(CP, password)
        with pytest.raises(InvalidStatus) as refused:
            async with SimulatedCharger(cp.url, CP, password="wrong-password-16"):
                pass
        assert (await cp.heartbeat()).current_time.endswith("Z")  # the refusal replaced nothing
        assert_relayed_exactly(cp, handle)
    assert refused.value.response.status_code == 401
    assert [s.status for s in csms.handshakes] == [101, 401]


@pytest.mark.parametrize("version", VERSIONS)
async def test_every_frame_of_an_ocpp_conversation_is_on_nats_in_wire_order(
    settings: Settings, nc: Client, version: Version
) -> None:
    """Boot, Heartbeat and a CSMS read: subjects, bodies and Oye headers follow the wire."""
    async with (
        CsmsServer() as csms,
        watching(nc, "oye.frames.>") as frames,
        through_relay(settings, csms, version=version) as (cp, handle),
    ):
        await cp.boot()
        await cp.heartbeat()
        await read_heartbeat_interval(handle, version)
        assert_relayed_exactly(cp, handle)
        await frames.wait_for_count(6)
    assert [f.message_type for f in cp.frames.frames].count(MessageType.CALL) == 3
    assert as_seen_on_nats(frames.messages) == wire_as_nats(cp)
    assert {m.headers[h.SUBPROTOCOL] for m in frames.messages if m.headers} == {
        SUBPROTOCOL[version]
    }


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_charger_id_with_subject_and_url_specials_works_end_to_end(
    settings: Settings, nc: Client, version: Version
) -> None:
    """'Zürich.Box 1*>%' boots, beats and is read by the CSMS; NATS has it as one token."""
    cp_id = "Zürich.Box 1*>%"
    async with (
        CsmsServer() as csms,
        watching(nc, "oye.frames.>") as frames,
        through_relay(settings, csms, cp_id, version=version) as (cp, handle),
    ):
        assert (await cp.boot()).status == "Accepted"
        await cp.heartbeat()
        assert await read_heartbeat_interval(handle, version) == "300"
        assert_relayed_exactly(cp, handle)
        await frames.wait_for_count(6)
    assert handle.charge_point_id == handle.peer.id == cp_id
    assert handle.path == "/ocpp/" + quote(cp_id, safe="")
    token = encode_token(cp_id)
    assert {m.subject for m in frames.messages} == {
        f"oye.frames.{token}.UPSTREAM",
        f"oye.frames.{token}.DOWNSTREAM",
    }
    assert {SUBJECTS.charge_point_of(m.subject) for m in frames.messages} == {cp_id}
    assert as_seen_on_nats(frames.messages) == wire_as_nats(cp)
