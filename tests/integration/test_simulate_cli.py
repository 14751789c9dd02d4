"""``oye simulate`` as a user runs it: a real subprocess against a real relay, the whole
stack, or a CSMS; what it does is watched on NATS (the relay publishes every frame)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from oye_cli.simulator import charger_url
from oye_cli.simulator.charger import cancel_and_wait
from oye_cli.simulator.console import FrameDescriber
from oye_cli.simulator.fleet import charger_ids
from oye_cli.simulator.frame_log import FrameLog, is_call
from oye_cli.simulator.reconnect import Backoff
from oye_cli.simulator.state import ChargerState
from oye_shared import headers as h
from oye_shared.settings import Settings
from oye_shared.subjects import Subjects, encode_token
from tests.peers.csms import CsmsServer
from tests.support.relay import Watcher, event_body, relay_running, watching
from tests.support.stack import stack_running

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "oye_cli.main", "simulate"]
WAIT = 20.0  # a fresh Python process imports the simulator first
VERSIONS = ["1.6", "2.0.1"]


@dataclass
class Simulation:
    """A running ``oye simulate`` and every line it printed so far."""

    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            async with self._changed:
                self.lines.append(raw.decode().rstrip("\n"))
                self._changed.notify_all()
        async with self._changed:
            self._changed.notify_all()

    async def wait_for_line(self, text: str, *, after: int = 0) -> str:
        """The first line from index ``after`` on that contains ``text``, waiting for it."""

        def found() -> str | None:
            return next((line for line in self.lines[after:] if text in line), None)

        async with asyncio.timeout(WAIT), self._changed:
            await self._changed.wait_for(lambda: found() is not None or self.ended)
        line = found()
        assert line is not None, f"{text!r} never printed:\n" + "\n".join(self.lines)
        return line

    @property
    def ended(self) -> bool:
        return self.process.returncode is not None

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    async def terminate(self) -> int:
        """SIGTERM, then the exit status (within the simulator's own deadline)."""
        self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(WAIT):
            return await self.process.wait()


@contextlib.asynccontextmanager
async def simulating(*args: str, env: dict[str, str] | None = None) -> AsyncIterator[Simulation]:
    """Run ``oye simulate ARGS``; killed at the end if the test did not stop it."""
    environment = {k: v for k, v in os.environ.items() if k != "OYE_SIM_PASSWORD"}
    process = await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=environment | (env or {}),
    )
    simulation = Simulation(process)
    reader = asyncio.create_task(simulation.read())
    try:
        yield simulation
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
        await reader


def frames_of(settings: Settings, charge_point_id: str) -> str:
    return f"{settings.subject_prefix}.frames.{encode_token(charge_point_id)}.>"


def is_frame(
    action: str, direction: str = "UPSTREAM", message_type: str = "CALL"
) -> Callable[[Msg], bool]:
    """A frame of ``action`` on NATS (by default: a CALL from the charger)."""

    def predicate(msg: Msg) -> bool:
        found = msg.headers or {}
        return (
            found.get(h.ACTION) == action
            and found.get(h.DIRECTION) == direction
            and found.get(h.MESSAGE_TYPE) == message_type
        )

    return predicate


def payload(msg: Msg) -> Any:
    return json.loads(msg.data)[-1]


def calls(watcher: Watcher, action: str) -> list[Any]:
    """The payloads of the charger's CALLs of ``action`` seen so far."""
    return [payload(m) for m in watcher.messages if is_frame(action)(m)]


def since(watcher: Watcher, predicate: Callable[[Msg], bool]) -> Callable[[Msg], bool]:
    """``predicate``, but only for messages that arrive from now on."""
    seen = {id(m) for m in watcher.messages}
    return lambda msg: id(msg) not in seen and predicate(msg)


def base_url(settings: Settings) -> str:
    return f"ws://127.0.0.1:{settings.ocpp_port}/ocpp"


@pytest.mark.parametrize("version", VERSIONS)
async def test_it_boots_through_the_relay_and_reports_its_connectors(
    settings: Settings, nc: Client, version: str
) -> None:
    """BootNotification, answered Accepted by a standalone relay, then a StatusNotification
    per connector; one readable line per frame; SIGTERM ends it with status 0."""
    cp = f"Garage Box.{version}"  # a space and a '.' travel encoded in URL and subject
    async with (
        relay_running(settings),
        watching(nc, frames_of(settings, cp)) as frames,
        simulating(base_url(settings), "--id", cp, "--ocpp", version, "--connectors", "2") as sim,
    ):
        boot = await frames.wait_for(is_frame("BootNotification"), WAIT)
        answer = await frames.wait_for(
            is_frame("BootNotification", "PROXY_RESPONSE", "CALLRESULT"), WAIT
        )
        assert payload(answer)["status"] == "Accepted"
        reports = 3 if version == "1.6" else 2  # 1.6 also reports connector 0
        await frames.wait_for(lambda _: len(calls(frames, "StatusNotification")) >= reports, WAIT)
        statuses = calls(frames, "StatusNotification")
        if version == "1.6":
            assert payload(boot) == {"chargePointModel": "Simulator", "chargePointVendor": "OYE"}
            assert [s["connectorId"] for s in statuses] == [0, 1, 2]
            assert {s["status"] for s in statuses} == {"Available"}
        else:
            assert payload(boot)["reason"] == "PowerUp"
            assert [s["evseId"] for s in statuses] == [1, 2]
            assert {s["connectorStatus"] for s in statuses} == {"Available"}
        await sim.wait_for_line(f"{cp}: boot accepted; Heartbeat every 300 s")
        await sim.wait_for_line(f"{cp} -> CALL BootNotification {{")
        await sim.wait_for_line(f"{cp} <- RESULT BootNotification {{")
        assert await sim.terminate() == 0
        assert sim.lines[-1].endswith(f"{cp}: stopped")


def expected_answers(version: str) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(action, payload, answer) as docs/SMART_CHARGING.md shows them; times normalised."""
    start = "2025-01-01T00:00:00Z"
    if version == "1.6":
        return [
            (
                "GetConfiguration",
                {"key": ["ChargeProfileMaxStackLevel", "SmartChargingEnabled"]},
                {
                    "configurationKey": [
                        {"key": "ChargeProfileMaxStackLevel", "readonly": True, "value": "8"}
                    ],
                    "unknownKey": ["SmartChargingEnabled"],
                },
            ),
            (
                "SetChargingProfile",
                {
                    "connectorId": 0,
                    "csChargingProfiles": {
                        "chargingProfileId": 1,
                        "stackLevel": 0,
                        "chargingProfilePurpose": "ChargePointMaxProfile",
                        "chargingProfileKind": "Absolute",
                        "chargingSchedule": {
                            "startSchedule": start,
                            "chargingRateUnit": "A",
                            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}],
                        },
                    },
                },
                {"status": "Accepted"},
            ),
            (
                "GetCompositeSchedule",
                {"connectorId": 0, "duration": 3600, "chargingRateUnit": "A"},
                {
                    "status": "Accepted",
                    "connectorId": 0,
                    "scheduleStart": "<now>",
                    "chargingSchedule": {
                        "duration": 3600,
                        "startSchedule": "<now>",
                        "chargingRateUnit": "A",
                        "chargingSchedulePeriod": [
                            {"startPeriod": 0, "limit": 16.0, "numberPhases": 3}
                        ],
                    },
                },
            ),
        ]
    return [
        (
            "GetVariables",
            {
                "getVariableData": [
                    {
                        "component": {"name": "SmartChargingCtrlr"},
                        "variable": {"name": "ProfileStackLevel"},
                    }
                ]
            },
            {
                "getVariableResult": [
                    {
                        "attributeStatus": "Accepted",
                        "component": {"name": "SmartChargingCtrlr"},
                        "variable": {"name": "ProfileStackLevel"},
                        "attributeValue": "8",
                    }
                ]
            },
        ),
        (
            "SetChargingProfile",
            {
                "evseId": 0,
                "chargingProfile": {
                    "id": 1,
                    "stackLevel": 0,
                    "chargingProfilePurpose": "ChargingStationMaxProfile",
                    "chargingProfileKind": "Absolute",
                    "chargingSchedule": [
                        {
                            "id": 1,
                            "startSchedule": start,
                            "chargingRateUnit": "A",
                            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}],
                        }
                    ],
                },
            },
            {"status": "Accepted"},
        ),
        (
            "GetCompositeSchedule",
            {"evseId": 0, "duration": 3600, "chargingRateUnit": "A"},
            {
                "status": "Accepted",
                "schedule": {
                    "evseId": 0,
                    "duration": 3600,
                    "scheduleStart": "<now>",
                    "chargingRateUnit": "A",
                    "chargingSchedulePeriod": [
                        {"startPeriod": 0, "limit": 16.0, "numberPhases": 3}
                    ],
                },
            },
        ),
    ]


def without_times(answer: Any) -> Any:
    """``scheduleStart``/``startSchedule`` replaced by ``<now>`` (they are the moment asked)."""
    if isinstance(answer, dict):
        return {
            key: "<now>" if key in ("scheduleStart", "startSchedule") else without_times(value)
            for key, value in answer.items()
        }
    if isinstance(answer, list):
        return [without_times(item) for item in answer]
    return answer


@pytest.mark.parametrize("version", VERSIONS)
async def test_injected_calls_through_the_stack_get_the_documented_answers(
    settings: Settings, nc: Client, version: str
) -> None:
    """GetConfiguration / GetVariables, SetChargingProfile and the GetCompositeSchedule it
    changes, injected through the API; then an injected Reset makes it boot again."""
    cp = f"DOC-{version}"
    async with (
        stack_running(settings) as stack,
        watching(nc, frames_of(settings, cp)) as frames,
        simulating(base_url(settings), "--id", cp, "--ocpp", version) as sim,
        stack.client() as api,
    ):
        await sim.wait_for_line(f"{cp}: boot accepted")
        for action, request, answer in expected_answers(version):
            reply = await api.post(f"/api/inject/{cp}", json={"action": action, "payload": request})
            assert reply.status_code == 200, reply.text
            assert without_times(reply.json()) == answer, action
            await sim.wait_for_line(f"{cp} <- CALL {action} ")
        await sim.wait_for_line(f"{cp} -> RESULT GetCompositeSchedule {{")

        reboot = since(frames, is_frame("BootNotification"))
        reset = {"type": "Hard"} if version == "1.6" else {"type": "Immediate"}
        reply = await api.post(f"/api/inject/{cp}", json={"action": "Reset", "payload": reset})
        assert reply.json() == {"status": "Accepted"}
        booted = await frames.wait_for(reboot, WAIT)
        if version == "2.0.1":
            assert payload(booted)["reason"] == "RemoteReset"
        await sim.wait_for_line(f"{cp}: rebooting after Reset")
        assert await sim.terminate() == 0


@pytest.mark.parametrize("version", VERSIONS)
async def test_it_reconnects_when_the_relay_comes_back_on_the_same_port(
    settings: Settings, nc: Client, version: str
) -> None:
    """Started before the relay, it keeps trying; the relay stops (closing it with 1001)
    and starts again on the same port: it connects again by itself and reports its
    connectors, without booting again (a reconnection is no reboot)."""
    cp = f"RECONNECT-{version}"
    subjects = Subjects(settings.subject_prefix)
    async with (
        watching(nc, subjects.events(cp, "connected")) as connected,
        watching(nc, frames_of(settings, cp)) as frames,
        simulating(
            base_url(settings), "--id", cp, "--ocpp", version, "--reconnect-max", "0.5"
        ) as sim,
    ):
        await sim.wait_for_line(f"{cp}: cannot connect: connection refused")
        async with relay_running(settings):
            await connected.wait_for_count(1, WAIT)
            await frames.wait_for(is_frame("StatusNotification"), WAIT)
        lost = await sim.wait_for_line(f"{cp}: connection lost (1001)")
        mark = sim.lines.index(lost)
        await sim.wait_for_line(f"{cp}: cannot connect: connection refused", after=mark)
        status_again = since(frames, is_frame("StatusNotification"))
        async with relay_running(settings):
            await connected.wait_for_count(2, WAIT)
            await frames.wait_for(status_again, WAIT)
        await sim.wait_for_line(f"{cp}: connected to", after=mark)
        assert len(calls(frames, "BootNotification")) == 1
        assert await sim.terminate() == 0


#: (action, payload, answer) in order; "TX" stands for the running transaction's id.
OTHER_CALLS: dict[str, list[tuple[str, dict[str, Any], dict[str, Any]]]] = {
    "1.6": [
        (
            "ChangeConfiguration",
            {"key": "HeartbeatInterval", "value": "60"},
            {"status": "Accepted"},
        ),
        (
            "ChangeConfiguration",
            {"key": "NumberOfConnectors", "value": "4"},
            {"status": "Rejected"},
        ),
        ("TriggerMessage", {"requestedMessage": "Heartbeat"}, {"status": "Accepted"}),
        ("ClearChargingProfile", {}, {"status": "Unknown"}),
        ("GetLocalListVersion", {}, {"listVersion": 0}),
        (
            "SendLocalList",
            {
                "listVersion": 3,
                "updateType": "Full",
                "localAuthorizationList": [{"idTag": "OWNER", "idTagInfo": {"status": "Accepted"}}],
            },
            {"status": "Accepted"},
        ),
        ("GetLocalListVersion", {}, {"listVersion": 3}),
        (
            "ReserveNow",
            {
                "connectorId": 1,
                "expiryDate": "2030-01-01T00:00:00Z",
                "idTag": "OWNER",
                "reservationId": 7,
            },
            {"status": "Accepted"},
        ),
        ("CancelReservation", {"reservationId": 7}, {"status": "Accepted"}),
        ("CancelReservation", {"reservationId": 7}, {"status": "Rejected"}),
        ("RemoteStartTransaction", {"connectorId": 1, "idTag": "OWNER"}, {"status": "Accepted"}),
        ("RemoteStopTransaction", {"transactionId": "TX"}, {"status": "Accepted"}),
        ("ChangeAvailability", {"connectorId": 1, "type": "Inoperative"}, {"status": "Accepted"}),
        ("UnlockConnector", {"connectorId": 1}, {"status": "Unlocked"}),
        ("DataTransfer", {"vendorId": "ACME"}, {"status": "UnknownVendorId"}),
        ("ClearCache", {}, {"status": "Accepted"}),
    ],
    "2.0.1": [
        (
            "SetVariables",
            {
                "setVariableData": [
                    {
                        "component": {"name": "OCPPCommCtrlr"},
                        "variable": {"name": "HeartbeatInterval"},
                        "attributeValue": "60",
                    }
                ]
            },
            {
                "setVariableResult": [
                    {
                        "component": {"name": "OCPPCommCtrlr"},
                        "variable": {"name": "HeartbeatInterval"},
                        "attributeStatus": "Accepted",
                    }
                ]
            },
        ),
        ("TriggerMessage", {"requestedMessage": "Heartbeat"}, {"status": "Accepted"}),
        ("GetChargingProfiles", {"requestId": 5, "chargingProfile": {}}, {"status": "NoProfiles"}),
        ("GetLocalListVersion", {}, {"versionNumber": 0}),
        (
            "SendLocalList",
            {
                "versionNumber": 3,
                "updateType": "Full",
                "localAuthorizationList": [
                    {
                        "idToken": {"idToken": "OWNER", "type": "Central"},
                        "idTokenInfo": {"status": "Accepted"},
                    }
                ],
            },
            {"status": "Accepted"},
        ),
        ("GetLocalListVersion", {}, {"versionNumber": 3}),
        (
            "ReserveNow",
            {
                "id": 7,
                "expiryDateTime": "2030-01-01T00:00:00Z",
                "idToken": {"idToken": "OWNER", "type": "Central"},
                "evseId": 1,
            },
            {"status": "Accepted"},
        ),
        ("CancelReservation", {"reservationId": 7}, {"status": "Accepted"}),
        (
            "RequestStartTransaction",
            {"idToken": {"idToken": "OWNER", "type": "Central"}, "remoteStartId": 1, "evseId": 1},
            {"status": "Accepted"},
        ),
        (
            "GetTransactionStatus",
            {"transactionId": "TX"},
            {"messagesInQueue": False, "ongoingIndicator": True},
        ),
        ("RequestStopTransaction", {"transactionId": "TX"}, {"status": "Accepted"}),
        (
            "ChangeAvailability",
            {"operationalStatus": "Inoperative", "evse": {"id": 1}},
            {"status": "Accepted"},
        ),
        ("UnlockConnector", {"evseId": 1, "connectorId": 1}, {"status": "Unlocked"}),
        ("ClearCache", {}, {"status": "Accepted"}),
    ],
}


async def started_transaction(frames: Watcher, version: str) -> str:
    """The id of the transaction the charger started (1.6: the proxy's answer gives it)."""
    if version == "1.6":
        msg = await frames.wait_for(
            is_frame("StartTransaction", "PROXY_RESPONSE", "CALLRESULT"), WAIT
        )
        return str(payload(msg)["transactionId"])

    def started(msg: Msg) -> bool:
        return is_frame("TransactionEvent")(msg) and payload(msg)["eventType"] == "Started"

    msg = await frames.wait_for(started, WAIT)
    return str(payload(msg)["transactionInfo"]["transactionId"])


@pytest.mark.parametrize("version", VERSIONS)
async def test_it_answers_the_other_calls_a_user_may_inject(
    settings: Settings, nc: Client, version: str
) -> None:
    """Configuration, triggers, local list, reservations, remote start and stop,
    availability, unlocking, ...: each injected call gets the charger's schema-valid
    answer, and what it starts follows (a transaction that the remote stop ends)."""
    cp = f"CALLS-{version}"
    stop_action = "StopTransaction" if version == "1.6" else "TransactionEvent"
    async with (
        stack_running(settings) as stack,
        watching(nc, frames_of(settings, cp)) as frames,
        simulating(base_url(settings), "--id", cp, "--ocpp", version) as sim,
        stack.client() as api,
    ):
        await sim.wait_for_line(f"{cp}: boot accepted")
        transaction: str | None = None
        for action, request, answer in OTHER_CALLS[version]:
            if "transactionId" in request:
                assert transaction is not None
                typed: Any = int(transaction) if version == "1.6" else transaction
                request = request | {"transactionId": typed}
            reply = await api.post(f"/api/inject/{cp}", json={"action": action, "payload": request})
            assert reply.status_code == 200, (action, reply.text)
            assert reply.json() == answer, action
            if action in ("RemoteStartTransaction", "RequestStartTransaction"):
                transaction = await started_transaction(frames, version)

        def remote_stop(msg: Msg) -> bool:
            if not is_frame(stop_action)(msg):
                return False
            if version == "1.6":
                return bool(payload(msg)["reason"] == "Remote")
            return bool(payload(msg)["transactionInfo"].get("stoppedReason") == "Remote")

        def reserved(msg: Msg) -> bool:
            status = payload(msg).get("status", payload(msg).get("connectorStatus"))
            return is_frame("StatusNotification")(msg) and status == "Reserved"

        await frames.wait_for(remote_stop, WAIT)
        await frames.wait_for(reserved, WAIT)
        assert await sim.terminate() == 0


async def test_count_runs_that_many_chargers_named_after_the_id(
    settings: Settings, nc: Client
) -> None:
    """--count 3 --id FLEET: FLEET-1, FLEET-2 and FLEET-3 connect and boot."""
    subjects = Subjects(settings.subject_prefix)
    names = {"FLEET-1", "FLEET-2", "FLEET-3"}
    async with (
        relay_running(settings),
        watching(nc, f"{settings.subject_prefix}.frames.*.UPSTREAM") as frames,
        simulating(base_url(settings), "--id", "FLEET", "--count", "3", "--quiet") as sim,
    ):
        boots = is_frame("BootNotification")

        def booted() -> set[str]:
            return {subjects.charge_point_of(m.subject) for m in frames.messages if boots(m)}

        await frames.wait_for(lambda _: booted() == names, WAIT)
        assert booted() == names
        for name in sorted(names):
            await sim.wait_for_line(f"{name}: boot accepted")
        assert " -> CALL " not in sim.output  # --quiet: events only
        assert await sim.terminate() == 0


async def test_sigterm_closes_the_socket_cleanly_and_exits_0(
    settings: Settings, nc: Client
) -> None:
    """The relay sees the charger leave with 1001 "charger shutting down"."""
    cp = "LEAVING"
    subjects = Subjects(settings.subject_prefix)
    async with (
        relay_running(settings),
        watching(nc, subjects.events(cp, "disconnected")) as gone,
        simulating(base_url(settings), "--id", cp) as sim,
    ):
        await sim.wait_for_line(f"{cp}: boot accepted")
        assert await sim.terminate() == 0
        event = event_body(await gone.wait_for(lambda _: True, WAIT))
        assert (event["code"], event["reason"]) == (1001, "charger shutting down"), sim.output
        assert "SIGTERM: stopping" in sim.output
        assert "not every charger closed" not in sim.output


@pytest.mark.parametrize("version", VERSIONS)
async def test_charge_sends_meter_values_that_follow_the_limit(
    settings: Settings, nc: Client, version: str
) -> None:
    """--charge with an allowed tag starts a session; meter values report the power the
    composite schedule allows: 32 A x 230 V x 3, then 10 A once the owner's limit is set."""
    cp = f"CHARGE-{version}"
    meter_action = "MeterValues" if version == "1.6" else "TransactionEvent"

    def power_of(msg: Msg) -> float | None:
        for value in payload(msg).get("meterValue", []):
            for sample in value["sampledValue"]:
                if sample.get("measurand") == "Power.Active.Import":
                    return float(sample["value"])
        return None

    def metered(watts: float) -> Callable[[Msg], bool]:
        return lambda msg: is_frame(meter_action)(msg) and power_of(msg) == watts

    stack_settings = settings.model_copy(update={"offline_id_tags": "OWNER"})
    async with (
        stack_running(stack_settings) as stack,
        watching(nc, frames_of(settings, cp)) as frames,
        simulating(
            base_url(settings),
            *("--id", cp, "--ocpp", version, "--charge", "--id-tag", "OWNER"),
            *("--meter-interval", "1"),
        ) as sim,
        stack.client() as api,
    ):
        await sim.wait_for_line(f"{cp}: charging on connector 1 with id tag OWNER")
        await frames.wait_for(metered(32 * 230 * 3), WAIT)
        reply = await api.post(f"/api/chargers/{cp}/smart-charging", json={"maxPower": 10})
        assert reply.json() == {"status": "Accepted"}
        await frames.wait_for(metered(10 * 230 * 3), WAIT)
        assert await sim.terminate() == 0


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_session_reports_its_status_beats_on_schedule_and_meters_on_request(
    settings: Settings, nc: Client, version: str
) -> None:
    """--charge --heartbeat 1 --meter-interval 0: the connector's status follows the
    session, Heartbeats come on their own, and meter values come only when a TriggerMessage
    asks for them, for the running transaction."""
    cp = f"ASKED-{version}"
    session_status = ["Preparing", "Charging"] if version == "1.6" else ["Occupied"]
    trigger: dict[str, Any] = {"requestedMessage": "MeterValues"}
    trigger |= {"connectorId": 1} if version == "1.6" else {"evse": {"id": 1}}
    stack_settings = settings.model_copy(update={"offline_id_tags": "OWNER"})
    async with (
        stack_running(stack_settings) as stack,
        watching(nc, frames_of(settings, cp)) as frames,
        simulating(
            base_url(settings),
            *("--id", cp, "--ocpp", version, "--charge", "--id-tag", "OWNER"),
            *("--heartbeat", "1", "--meter-interval", "0"),
        ) as sim,
        stack.client() as api,
    ):
        transaction = await started_transaction(frames, version)
        await sim.wait_for_line(f"{cp}: charging on connector 1 with id tag OWNER")
        await frames.wait_for(lambda _: len(calls(frames, "Heartbeat")) >= 2, WAIT)
        key = "status" if version == "1.6" else "connectorStatus"
        statuses = [s[key] for s in calls(frames, "StatusNotification")]
        assert statuses[-len(session_status) :] == session_status, statuses
        assert calls(frames, "MeterValues") == []  # none on a schedule: interval 0

        reply = await api.post(
            f"/api/inject/{cp}", json={"action": "TriggerMessage", "payload": trigger}
        )
        assert reply.json() == {"status": "Accepted"}
        metered = await frames.wait_for(is_frame("MeterValues"), WAIT)
        values = payload(metered)
        if version == "1.6":
            assert (values["connectorId"], values["transactionId"]) == (1, int(transaction))
        else:
            assert values["evseId"] == 1
        (sample,) = values["meterValue"][0]["sampledValue"]
        assert sample["measurand"] == "Energy.Active.Import.Register"
        assert await sim.terminate() == 0


async def test_the_password_is_sent_as_basic_auth_and_never_printed() -> None:
    """OYE_SIM_PASSWORD authenticates the charger at a CSMS that demands it; a wrong one
    ends the simulator with status 1 and a hint, without retrying forever."""
    secret = "correct horse battery"
    async with CsmsServer(passwords={"AUTH-1": secret}) as csms:
        async with simulating(csms.url, "--id", "AUTH-1", env={"OYE_SIM_PASSWORD": secret}) as sim:
            async with asyncio.timeout(WAIT):
                handle = await csms.wait_for_charger("AUTH-1")
            await sim.wait_for_line("AUTH-1: boot accepted")
            assert handle.calls("BootNotification")
            assert await sim.terminate() == 0
        assert secret not in sim.output
        async with simulating(csms.url, "--id", "AUTH-1", env={"OYE_SIM_PASSWORD": "wrong"}) as sim:
            async with asyncio.timeout(WAIT):
                assert await sim.process.wait() == 1
        assert "refused with HTTP 401" in sim.output
        assert "OYE_SIM_PASSWORD" in sim.output
        assert "wrong" not in sim.output.replace("(wrong or missing password", "")


async def test_help_names_every_option_and_a_bad_url_is_a_usage_error() -> None:
    """--help documents the options; a URL that is not ws:// or wss:// exits with 2."""
    async with simulating("--help") as sim:
        assert await sim.process.wait() == 0
    for option in ("--id", "--count", "--ocpp", "--connectors", "--heartbeat", "--charge"):
        assert option in sim.output
    assert "OYE_SIM_PASSWORD" in sim.output
    async with simulating("http://127.0.0.1:9000/ocpp") as sim:
        assert await sim.process.wait() == 2
    assert "no ws:// or wss:// URL" in sim.output


def test_the_charger_url_is_the_base_and_the_encoded_id() -> None:
    """What the simulator connects to: base + '/' + the id percent-encoded once."""
    assert charger_url("ws://h:9000/ocpp/", "Garage Box.1") == "ws://h:9000/ocpp/Garage%20Box.1"


# -- the pure parts behind the command ----------------------------------------------------


def test_charger_ids_are_the_id_or_numbered_from_it() -> None:
    """One charger keeps the id; several are id-1 ... id-N."""
    assert charger_ids("SIM-1", 1) == ["SIM-1"]
    assert charger_ids("BOX", 3) == ["BOX-1", "BOX-2", "BOX-3"]


def test_the_backoff_doubles_up_to_its_maximum_and_starts_over_after_a_success() -> None:
    """1, 2, 4, 5, 5 seconds (no jitter), and 1 again after reset()."""
    backoff = Backoff(initial=1, maximum=5, jitter=0.2, random_fraction=lambda: 0.0)
    assert [backoff.next_delay() for _ in range(5)] == [1, 2, 4, 5, 5]
    backoff.reset()
    assert backoff.next_delay() == 1
    shortened = Backoff(initial=10, maximum=10, jitter=0.2, random_fraction=lambda: 1.0)
    assert shortened.next_delay() == pytest.approx(8.0)


def test_a_frame_log_with_a_limit_keeps_counting_and_finds_what_it_kept() -> None:
    """Old frames are dropped, indexes go on, ``since`` still means "from frame n on"."""
    seen: list[int] = []
    log = FrameLog(limit=3, listener=lambda frame: seen.append(frame.index))
    for n in range(5):
        log.record("sent", f'[2,"m{n}","Heartbeat",{{}}]')
    assert [f.index for f in log.frames] == [2, 3, 4]
    assert seen == [0, 1, 2, 3, 4]
    assert log.next_index == 5
    assert [f.message_id for f in log.find(is_call("Heartbeat"), since=3)] == ["m3", "m4"]
    assert [f.message_id for f in log.find(is_call(), since=0)] == ["m2", "m3", "m4"]


def test_each_frame_is_one_line_and_a_reply_is_named_after_its_call() -> None:
    """Direction arrow, type, the action (for replies: of the CALL answered), payload."""
    describe = FrameDescriber(width=40).describe
    log = FrameLog()
    assert describe(log.record("received", '[2,"a","GetConfiguration",{"key":["X"]}]')) == (
        '<- CALL GetConfiguration {"key":["X"]}'
    )
    assert describe(log.record("sent", '[3,"a",{"configurationKey":[],"unknownKey":["X"]}]')) == (
        '-> RESULT GetConfiguration {"configurationKey":[],"unknownKey":[...'
    )
    assert describe(log.record("sent", '[4,"zz","NotImplemented","no",{}]')) == (
        "-> ERROR ? NotImplemented: no"
    )
    assert describe(log.record("received", "not json")) == "<- MALFORMED not json"


def test_the_local_list_and_reservations_follow_the_rules() -> None:
    """Differential updates must be newer; a connector holds one reservation at a time."""
    state = ChargerState.with_connectors(2)
    local = state.local
    assert local.update(2, "Full", [("A", "Accepted"), ("B", "Blocked")]) == "Accepted"
    assert local.update(2, "Differential", [("C", "Accepted")]) == "VersionMismatch"
    assert local.update(3, "Differential", [("B", None)]) == "Accepted"
    assert (local.version, local.tags) == (3, {"A": "Accepted"})
    assert local.reserve(1, state.connector(1)) == "Accepted"
    assert local.reserve(2, state.connector(1)) == "Occupied"
    assert local.reserve(1, state.connector(1)) == "Accepted"  # the same id replaces
    assert local.reserve(3, None) == "Rejected"
    assert local.cancel(1) == 1
    assert local.cancel(1) is None


async def test_cancelling_ends_a_task_that_swallowed_the_first_cancellation() -> None:
    """What ``asyncio.wait_for`` does in 3.11 when the answer and the cancel coincide."""

    async def stubborn() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(60)
        await asyncio.sleep(60)

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    async with asyncio.timeout(5):
        await cancel_and_wait([task])
    assert task.cancelled()
