"""Injection through the whole stack: errors, timeouts, the shared lane, the charger list."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client
from websockets.asyncio.client import ClientConnection, connect

from oye_cli.simulator import SimulatedCharger
from oye_shared import headers as h
from oye_shared.settings import Settings
from tests.conftest import free_port
from tests.support.raw_csms import RawCsms
from tests.support.relay import eventually, watching
from tests.support.stack import Stack, stack_running

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack(settings: Settings) -> AsyncIterator[Stack]:
    async with stack_running(settings) as running:
        yield running


@pytest.fixture
async def upstream_stack(settings: Settings) -> AsyncIterator[tuple[Stack, RawCsms]]:
    async with (
        RawCsms() as csms,
        stack_running(settings.model_copy(update={"upstream_url": csms.url})) as running,
    ):
        yield running, csms


async def raw_charger(stack: Stack, charge_point_id: str) -> ClientConnection:
    return await connect(stack.relay.url(charge_point_id), subprotocols=["ocpp1.6"])  # type: ignore[list-item]


async def test_a_charger_nobody_holds_gets_503_at_once(stack: Stack) -> None:
    """NATS has no responder for it: 503 well before any timeout."""
    async with stack.client() as api, asyncio.timeout(5):
        reply = await api.post(
            "/api/inject/nobody", json={"action": "Reset", "payload": {"type": "Soft"}}
        )
    assert reply.status_code == 503
    assert "not connected" in reply.json()["detail"]


async def test_payload_errors_are_422_with_every_problem_and_its_path(stack: Stack) -> None:
    """A bad 1.6 SetChargingProfile lists each problem at its JSON path; nothing is sent."""
    async with SimulatedCharger(stack.relay.url("CP-V"), "CP-V", version="1.6") as charger:
        await charger.boot()
        async with stack.client() as api:
            bad = await api.post(
                "/api/inject/CP-V",
                json={
                    "action": "SetChargingProfile",
                    "payload": {
                        "connectorId": "one",
                        "csChargingProfiles": {
                            "chargingProfileId": 1,
                            "stackLevel": 0,
                            "chargingProfilePurpose": "ChargePointMaxProfile",
                            "chargingProfileKind": "Absolute",
                            "chargingSchedule": {
                                "chargingRateUnit": "A",
                                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.05}],
                            },
                        },
                    },
                },
            )
            heartbeat = await api.post(
                "/api/inject/CP-V", json={"action": "Heartbeat", "payload": {}}
            )
            exact = await api.post(
                "/api/inject/CP-V",
                json={
                    "action": "ChangeConfiguration",
                    "payload": {"key": "MeterValueSampleInterval", "value": "21.4"},
                },
            )
        assert bad.status_code == 422
        paths = {p["path"] for p in bad.json()["problems"]}
        assert "$.connectorId" in paths
        assert any(p.endswith("chargingSchedulePeriod[0].limit") for p in paths)
        assert heartbeat.status_code == 422
        assert "sent by chargers" in heartbeat.json()["detail"]
        assert exact.status_code == 200
        received = [f.action for f in charger.frames.find(lambda f: True, direction="received")]
        assert "SetChargingProfile" not in received


async def test_a_silent_charger_gives_504_and_its_late_answer_is_swallowed(
    upstream_stack: tuple[Stack, RawCsms], nc: Client
) -> None:
    """No answer within the request's timeout: 504. The late answer reaches NATS as an
    INJECTION_RESPONSE and never the CSMS."""
    stack, csms = upstream_stack
    charger = await raw_charger(stack, "CP-SLOW")
    try:
        async with watching(nc, "oye.frames.>") as frames, stack.client() as api:
            request = asyncio.create_task(
                api.post(
                    "/api/inject/CP-SLOW",
                    json={"action": "Reset", "payload": {"type": "Soft"}, "timeout": 1},
                )
            )
            call = json.loads(await charger.recv())
            reply = await request
            assert reply.status_code == 504
            await charger.send(json.dumps([3, call[1], {"status": "Accepted"}]))
            late = await frames.wait_for(
                lambda m: (m.headers or {}).get(h.DIRECTION) == "INJECTION_RESPONSE"
            )
            assert (late.headers or {})[h.MESSAGE_ID] == call[1]
            assert (late.headers or {})[h.ACTION] == "Reset"
            await charger.send('[2,"hb","Heartbeat",{}]')
            assert json.loads(await charger.recv()) == [3, "hb", {}]
        connected = await csms.wait_connection("CP-SLOW")
        assert connected.received == ['[2,"hb","Heartbeat",{}]']
    finally:
        await charger.close()


async def test_wait_false_returns_202_with_the_message_id_at_once(stack: Stack) -> None:
    """The original OYE's fire-and-forget: 202 and the id; the CALL still goes out."""
    charger = await raw_charger(stack, "CP-202")
    try:
        async with stack.client() as api:
            reply = await api.post(
                "/api/inject/CP-202?wait=false",
                json={"action": "Reset", "payload": {"type": "Hard"}},
            )
        assert reply.status_code == 202
        sent = reply.json()
        assert sent["status"] == "sent"
        call = json.loads(await charger.recv())
        assert call == [2, sent["messageId"], "Reset", {"type": "Hard"}]
    finally:
        await charger.close()


async def test_csms_and_injected_calls_never_leave_two_calls_outstanding(
    upstream_stack: tuple[Stack, RawCsms],
) -> None:
    """A CSMS call and a burst of injections reach the charger one at a time; each answer
    goes to whoever asked, and the CSMS gets only its own."""
    stack, csms = upstream_stack
    charger = await raw_charger(stack, "CP-LANE")
    overlaps: list[str] = []
    answered: list[str] = []

    async def slow_charger() -> None:
        pending = json.loads(await charger.recv())
        while True:
            try:
                async with asyncio.timeout(0.15):  # a second CALL now would be a violation
                    extra = json.loads(await charger.recv())
            except TimeoutError:
                extra = None
            if extra is not None:
                overlaps.append(extra[1])
            await charger.send(json.dumps([3, pending[1], {"status": "Accepted"}]))
            answered.append(pending[2])
            pending = extra if extra is not None else json.loads(await charger.recv())

    charger_task = asyncio.create_task(slow_charger())
    try:
        connected = await csms.wait_connection("CP-LANE")
        async with stack.client() as api:
            await connected.connection.send(
                '[2,"csms-1","ChangeAvailability",{"connectorId":0,"type":"Operative"}]'
            )
            replies = await asyncio.gather(
                *(
                    api.post(
                        "/api/inject/CP-LANE",
                        json={"action": "Reset", "payload": {"type": "Soft"}},
                    )
                    for _ in range(5)
                )
            )
        assert [r.status_code for r in replies] == [200] * 5
        assert [r.json() for r in replies] == [{"status": "Accepted"}] * 5
        received = await csms.wait_received(connected, 1)
        assert json.loads(received[0]) == [3, "csms-1", {"status": "Accepted"}]
        assert overlaps == []
        assert sorted(answered) == ["ChangeAvailability"] + ["Reset"] * 5
    finally:
        charger_task.cancel()
        await charger.close()
    assert len(connected.received) == 1


async def test_the_charger_list_shows_what_the_charger_said_and_survives_an_api_restart(
    settings: Settings,
) -> None:
    """ONLINE, version, boot data and connector states, from KV, read by a fresh API."""
    async with (
        stack_running(settings) as stack,
        SimulatedCharger(stack.relay.url("CP-L"), "CP-L", version="2.0.1") as charger,
    ):
        await charger.boot()
        await charger.status(1, "Occupied")

        async def listed() -> dict[str, object] | None:
            async with stack.client() as api:
                reply = await api.get("/api/chargers/CP-L")
            body: dict[str, object] = reply.json()
            ok = reply.status_code == 200 and body.get("connectors") and body.get("boot")
            return body if ok else None

        state = await eventually(listed)
        assert state["status"] == "ONLINE"
        assert state["ocppVersion"] == "2.0.1"
        assert state["subprotocol"] == "ocpp2.0.1"
        assert state["boot"]["vendor"] == "OYE"
        assert state["connectors"]["1/1"]["status"] == "Occupied"
    # The first API is gone; a new one, on another port, reads the same KV.
    fresh = stack.settings.model_copy(update={"http_port": free_port()})
    async with stack_running(fresh) as restarted, restarted.client() as api:
        again = (await api.get("/api/chargers")).json()
        assert [c["chargePointId"] for c in again] == ["CP-L"]
