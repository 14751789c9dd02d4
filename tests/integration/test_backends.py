"""One charger, several backends: a primary CSMS and a secondary one, with real OCPP peers
on every side (1.6 and 2.0.1), sharing the one lane of calls towards the charger."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import ocpp.v16.call as call16
import ocpp.v201.call as call201
import pytest
from nats.aio.client import Client

from oye_cli.simulator.charger import SimulatedCharger
from oye_shared import headers as h
from oye_shared.frames import MessageType
from oye_shared.settings import Settings
from tests.peers.csms import ChargerHandle, CsmsServer
from tests.support.backends import (
    PRIMARY_FIRST_TX,
    SECONDARY_FIRST_TX,
    calls_received,
    charger_on,
    most_outstanding,
    received,
    two_backends,
)
from tests.support.relay import eventually
from tests.support.stack import stack_running

pytestmark = pytest.mark.integration

VERSIONS = ["1.6", "2.0.1"]


def read_call(version: str, key: str) -> Any:
    if version == "1.6":
        return call16.GetConfiguration(key=[key])
    return call201.GetVariables(
        get_variable_data=[{"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": key}}]
    )


def remote_start(version: str) -> Any:
    if version == "1.6":
        return call16.RemoteStartTransaction(id_tag="TAG-1", connector_id=1)
    return call201.RequestStartTransaction(
        id_token={"idToken": "TAG-1", "type": "Central"}, remote_start_id=1, evse_id=1
    )


@pytest.mark.parametrize("version", VERSIONS)
async def test_both_backends_receive_every_charger_message_and_the_charger_only_the_primarys(
    settings: Settings, nc: Client, version: str
) -> None:
    """Boot, heartbeat and status reach both; the charger's answers are the primary's."""
    async with (
        two_backends(settings, nc) as setup,
        charger_on(setup, "CP-F", version) as (charger, primary, secondary),
    ):
        await charger.boot()
        await charger.heartbeat()
        await charger.status(1, "Available")
        sent = ["BootNotification", "Heartbeat", "StatusNotification"]
        await received(secondary, "StatusNotification")
        assert calls_received(primary) == sent
        assert calls_received(secondary) == sent
        # The charger got exactly one answer per CALL: the primary's.
        answers = [f for f in charger.frames.frames if f.direction == "received"]
        assert len(answers) == 3
        primary_answers = [f.text for f in primary.frames.frames if f.direction == "sent"]
        assert [f.text for f in answers] == primary_answers
        # Every frame on NATS names its backend (published after it was forwarded).
        for backend in ("primary", "ha"):
            await setup.bus.wait_for(
                lambda m, b=backend: (
                    ".frames." in m.subject and (m.headers or {}).get(h.BACKEND) == b
                )
            )
        frames = [m for m in setup.bus.messages if ".frames." in m.subject]
        by_backend = {(m.headers or {}).get(h.BACKEND) for m in frames}
        assert by_backend == {"primary", "ha"}


async def test_a_16_transaction_reaches_the_secondary_under_its_own_id(
    settings: Settings, nc: Client
) -> None:
    """The charger holds the primary's transaction id; the secondary sees its own."""
    async with (
        two_backends(settings, nc) as setup,
        charger_on(setup, "CP-T", "1.6") as (charger, primary, secondary),
    ):
        await charger.boot()
        started = await charger.start_transaction(1, "TAG-1", meter_start=0)
        assert started.transaction_id == PRIMARY_FIRST_TX
        await received(secondary, "StartTransaction")
        async with asyncio.timeout(10):
            await secondary.frames.wait_for(
                lambda f: (
                    isinstance(f.payload, dict)
                    and f.payload.get("transactionId") == SECONDARY_FIRST_TX
                ),
                direction="sent",
            )
        await charger.meter_values(1, energy_wh=500)
        await charger.stop_transaction(PRIMARY_FIRST_TX, meter_stop=1000)
        await received(secondary, "StopTransaction")
        assert primary.calls("StopTransaction")[0]["transactionId"] == PRIMARY_FIRST_TX
        assert secondary.calls("MeterValues")[0]["transactionId"] == SECONDARY_FIRST_TX
        assert secondary.calls("StopTransaction")[0]["transactionId"] == SECONDARY_FIRST_TX


@pytest.mark.parametrize("version", VERSIONS)
async def test_backends_calling_at_once_share_the_lane_and_get_their_own_answers(
    settings: Settings, nc: Client, version: str
) -> None:
    """Never two calls outstanding at the charger; each backend's answer is its own."""
    async with (
        two_backends(settings, nc) as setup,
        charger_on(setup, "CP-L", version) as (charger, primary, secondary),
    ):
        await charger.boot()
        keys = ["HeartbeatInterval", "MeterValueSampleInterval", "ConnectionTimeOut"]
        results = await asyncio.gather(
            *(primary.call(read_call(version, key)) for key in keys),
            *(secondary.call(read_call(version, key)) for key in keys),
        )
        assert len(results) == 6
        assert most_outstanding(charger.frames.frames) == 1
        to_charger = [f for f in charger.frames.frames if f.direction == "received" and f.action]
        assert len(to_charger) == 6
        assert all((f.message_id or "").startswith("oyb-") for f in to_charger)
        # Each backend got answers under the ids it chose.
        for handle in (primary, secondary):
            asked = {f.message_id for f in handle.frames.frames if f.direction == "sent"}
            answered = {
                f.message_id
                for f in handle.frames.frames
                if f.direction == "received" and f.message_type is MessageType.CALLRESULT
            }
            assert answered
            assert answered <= asked


@pytest.mark.parametrize("version", VERSIONS)
async def test_the_same_message_id_from_both_backends_at_once_causes_no_confusion(
    settings: Settings, nc: Client, version: str
) -> None:
    """Both backends send CALL "same-id" about different keys; each gets its own answer."""
    async with (
        two_backends(settings, nc) as setup,
        charger_on(setup, "CP-S", version) as (charger, primary, secondary),
    ):
        await charger.boot()
        action = "GetConfiguration" if version == "1.6" else "GetVariables"
        for handle, key in ((primary, "HeartbeatInterval"), (secondary, "ConnectionTimeOut")):
            payload = read_call(version, key)
            body = (
                {"key": [key]}
                if version == "1.6"
                else {"getVariableData": payload.get_variable_data}
            )
            await handle.send_raw(json.dumps([2, "same-id", action, body]))

        async def answer_of(handle: ChargerHandle) -> str:
            async with asyncio.timeout(10):
                frame = await handle.frames.wait_for(
                    lambda f: f.message_id == "same-id" and f.message_type is not MessageType.CALL,
                    direction="received",
                )
            return frame.text

        primary_answer, secondary_answer = await asyncio.gather(
            answer_of(primary), answer_of(secondary)
        )
        assert "HeartbeatInterval" in primary_answer
        assert "ConnectionTimeOut" not in primary_answer
        assert "ConnectionTimeOut" in secondary_answer
        assert "HeartbeatInterval" not in secondary_answer
        assert most_outstanding(charger.frames.frames) == 1


@pytest.mark.parametrize("version", VERSIONS)
async def test_the_default_read_only_policy_answers_a_remote_start_and_forwards_a_read(
    settings: Settings, nc: Client, version: str
) -> None:
    """The secondary's remote start never reaches the charger; its read does."""
    async with (
        two_backends(settings, nc) as setup,
        charger_on(setup, "CP-P", version) as (charger, _primary, secondary),
    ):
        await charger.boot()
        answer = await secondary.call(remote_start(version))
        assert answer.status == "Rejected"
        await secondary.call(read_call(version, "HeartbeatInterval"))
        actions = [f.action for f in charger.frames.frames if f.direction == "received"]
        assert "RemoteStartTransaction" not in actions
        assert "RequestStartTransaction" not in actions
        assert ("GetConfiguration" if version == "1.6" else "GetVariables") in actions
        proxy_answer = await setup.bus.wait_for(
            lambda m: (
                m.subject.endswith(".PROXY_RESPONSE") and (m.headers or {}).get(h.BACKEND) == "ha"
            )
        )
        assert b"Rejected" in proxy_answer.data


async def test_a_reject_policy_answers_with_a_security_error(
    settings: Settings, nc: Client
) -> None:
    """policy reject: a CALLERROR SecurityError that says why."""
    policy = {"Reset": "reject"}
    async with (
        two_backends(settings, nc, policy=policy) as setup,
        charger_on(setup, "CP-R", "1.6") as (charger, _primary, secondary),
    ):
        await charger.boot()
        await secondary.send_raw('[2,"r1","Reset",{"type":"Soft"}]')
        async with asyncio.timeout(10):
            frame = await secondary.frames.wait_for(
                lambda f: f.message_id == "r1", direction="received"
            )
        assert frame.message_type is MessageType.CALLERROR
        assert "SecurityError" in frame.text
        assert "'ha'" in frame.text


async def test_a_secondary_that_goes_down_catches_up_and_the_primary_never_notices(
    settings: Settings, nc: Client
) -> None:
    """What the secondary missed (boot, status, transaction) reaches it when it is back."""
    async with (
        two_backends(settings, nc) as setup,
        charger_on(setup, "CP-D", "1.6") as (charger, primary, secondary),
    ):
        await charger.boot()
        await setup.bus.wait_for(lambda m: m.subject.endswith(".events.CP-D.backend_up"))
        await setup.secondary.stop()
        await setup.bus.wait_for(lambda m: m.subject.endswith(".events.CP-D.backend_down"))

        await charger.heartbeat()
        await charger.status(1, "Charging")
        started = await charger.start_transaction(1, "TAG-1", meter_start=0)
        assert started.transaction_id == PRIMARY_FIRST_TX  # the primary, as ever
        await charger.stop_transaction(PRIMARY_FIRST_TX, meter_stop=700)

        await setup.secondary.start()
        async with asyncio.timeout(15):
            again = await setup.secondary.wait_for_charger("CP-D", newer_than=secondary)
        await received(again, "StopTransaction")
        # Kept messages in order; heartbeats are not caught up.
        assert calls_received(again) == [
            "StatusNotification",
            "StartTransaction",
            "StopTransaction",
        ]
        assert again.calls("StopTransaction")[0]["transactionId"] == SECONDARY_FIRST_TX
        assert calls_received(primary) == [
            "BootNotification",
            "Heartbeat",
            "StatusNotification",
            "StartTransaction",
            "StopTransaction",
        ]
        assert not any(m.subject.endswith(".events.CP-D.upstream_down") for m in setup.bus.messages)


@pytest.mark.parametrize("version", VERSIONS)
async def test_the_primary_down_gets_offline_answers_and_replay_while_the_secondary_carries_on(
    settings: Settings, nc: Client, version: str
) -> None:
    """Offline answers and replay as before; the secondary hears everything live."""
    async with (
        two_backends(settings, nc) as setup,
        charger_on(setup, "CP-O", version) as (charger, primary, secondary),
    ):
        await charger.boot()
        await setup.primary.stop()
        await setup.bus.wait_for(lambda m: m.subject.endswith(".events.CP-O.upstream_down"))

        await charger.status(1, "Charging" if version == "1.6" else "Occupied")
        heartbeat = await charger.heartbeat()
        assert heartbeat.current_time  # the proxy's answer
        await received(secondary, "StatusNotification")
        await received(secondary, "Heartbeat")
        await setup.bus.wait_for(lambda m: m.subject.endswith(".PROXY_RESPONSE"))
        # The secondary still reads from the charger meanwhile.
        await secondary.call(read_call(version, "HeartbeatInterval"))

        await setup.primary.start()
        await setup.bus.wait_for(lambda m: m.subject.endswith(".events.CP-O.replayed"), seconds=20)
        async with asyncio.timeout(5):
            again = await setup.primary.wait_for_charger("CP-O", newer_than=primary)
        assert calls_received(again) == ["StatusNotification"]
        assert calls_received(secondary) == ["BootNotification", "StatusNotification", "Heartbeat"]


async def test_a_conflicting_configuration_is_refused_and_backends_show_per_charger(
    settings: Settings,
) -> None:
    """POST /api/config: 422 naming the conflict; GET /api/chargers/{id} lists backends."""
    async with (
        CsmsServer() as primary,
        CsmsServer() as secondary,
        stack_running(settings.model_copy(update={"upstream_url": primary.url})) as stack,
        stack.client() as api,
    ):
        refused = await api.post(
            "/api/config",
            json={
                "secondaryBackends": [
                    {
                        "name": "ha",
                        "url": secondary.url,
                        "policy": {"RemoteStartTransaction": "forward"},
                    }
                ]
            },
        )
        assert refused.status_code == 422
        assert (
            "RemoteStartTransaction/RequestStartTransaction is owned by both 'primary' and 'ha'"
            in (refused.json()["detail"])
        )
        accepted = await api.post(
            "/api/config",
            json={
                "primaryPolicy": {
                    "RemoteStartTransaction": "answer",
                    "RequestStartTransaction": "answer",
                },
                "secondaryBackends": [
                    {
                        "name": "ha",
                        "url": secondary.url,
                        "policy": {"RemoteStartTransaction": "forward"},
                    }
                ],
            },
        )
        assert accepted.status_code == 200, accepted.text

        # The relay applies the configuration to connections made after it saw it.
        counter = iter(range(1000))
        ids: list[str] = []

        async def connects_to_ha() -> bool:
            ids.append(f"CP-K{next(counter)}")
            async with SimulatedCharger(stack.relay.url(ids[-1]), ids[-1]) as charger:
                await charger.boot()
                with contextlib.suppress(TimeoutError):  # this one came too early
                    async with asyncio.timeout(1):
                        await secondary.wait_for_charger(ids[-1])
            # Any of them: the link may reach the backend only after the charger left.
            return any(cp in secondary.chargers for cp in ids)

        await eventually(connects_to_ha)
        async with SimulatedCharger(stack.relay.url("CP-K"), "CP-K") as charger:
            await charger.boot()
            async with asyncio.timeout(10):
                await secondary.wait_for_charger("CP-K")
            state = await eventually(lambda: _backends_up(api, "CP-K"))
        assert state == {"primary": "up", "ha": "up"}


async def _backends_up(api: Any, cp: str) -> dict[str, Any] | None:
    reply = await api.get(f"/api/chargers/{cp}")
    if reply.status_code != 200:
        return None
    backends: dict[str, Any] = reply.json().get("backends", {})
    return backends if backends.get("ha") == "up" else None


async def test_a_secondarys_password_is_never_shown_and_survives_a_round_trip(
    settings: Settings, nc: Client
) -> None:
    """GET /api/config hides it; posting what GET showed keeps the stored password."""
    secret = "the-secondarys-own-password"
    async with (
        CsmsServer() as primary,
        stack_running(settings.model_copy(update={"upstream_url": primary.url})) as stack,
        stack.client() as api,
    ):
        backend = {"name": "ha", "url": "ws://127.0.0.1:1/ocpp", "auth": "basic"}
        posted = await api.post(
            "/api/config", json={"secondaryBackends": [{**backend, "password": secret}]}
        )
        assert posted.status_code == 200
        assert secret not in posted.text
        shown = (await api.get("/api/config")).json()
        assert shown["secondaryBackends"][0]["password"] == "********"
        again = await api.post(
            "/api/config", json={"secondaryBackends": shown["secondaryBackends"]}
        )
        assert again.status_code == 200
        kv = await nc.jetstream().key_value("OYE_config")
        stored = json.loads((await kv.get("proxy")).value or b"{}")
        assert stored["secondaryBackends"][0]["password"] == secret
