"""No CSMS at all: whole sessions answered by the proxy, and who may charge."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from oye_cli.simulator import SimulatedCharger
from oye_cli.simulator.frame_log import is_call
from oye_relay.transaction_ids import FIRST
from oye_shared.settings import Settings
from tests.support.relay import eventually
from tests.support.stack import Stack, stack_running

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack(settings: Settings) -> AsyncIterator[Stack]:
    async with stack_running(
        settings.model_copy(update={"offline_id_tags": "FAMILY, NEIGHBOUR"})
    ) as running:
        yield running


async def test_a_standalone_16_charger_runs_a_whole_session(stack: Stack) -> None:
    """Boot, authorize, start, meter values, stop: every call answered by the proxy."""
    async with SimulatedCharger(stack.relay.url("SA-16"), "SA-16", version="1.6") as charger:
        boot = await charger.boot()
        assert boot.status == "Accepted"
        assert boot.interval > 0
        assert (await charger.authorize("FAMILY")).id_tag_info["status"] == "Accepted"
        started = await charger.start_transaction(connector=1, id_tag="FAMILY", meter_start=1000)
        assert started.id_tag_info["status"] == "Accepted"
        assert started.transaction_id >= FIRST
        await charger.meter_values(1, energy_wh=1500, power_w=7400)
        await charger.stop_transaction(started.transaction_id, meter_stop=2000)
        assert not charger.errors


async def test_a_standalone_201_charger_runs_a_whole_session(stack: Stack) -> None:
    """Boot, authorize, TransactionEvent Started/Updated/Ended: all answered, tokens checked."""
    async with SimulatedCharger(stack.relay.url("SA-201"), "SA-201", version="2.0.1") as charger:
        assert (await charger.boot()).status == "Accepted"
        assert (await charger.authorize("NEIGHBOUR")).id_token_info["status"] == "Accepted"
        started = await charger.transaction_event("Started", id_tag="NEIGHBOUR", energy_wh=0)
        assert started.id_token_info["status"] == "Accepted"
        await charger.transaction_event("Updated", energy_wh=500)
        await charger.transaction_event("Ended", energy_wh=900)
        assert not charger.errors


async def test_offline_tags_are_refused_unless_allowed_remote_started_or_auto_charging(
    stack: Stack,
) -> None:
    """Invalid by default; Accepted on the allow-list, after an injected remote start, or
    with autoChargeEnabled."""
    async with (
        SimulatedCharger(stack.relay.url("SA-T"), "SA-T", version="1.6") as charger,
        stack.client() as api,
    ):
        await charger.boot()
        assert (await charger.authorize("STRANGER")).id_tag_info["status"] == "Invalid"
        assert (await charger.authorize("FAMILY")).id_tag_info["status"] == "Accepted"

        remote = await api.post(
            "/api/inject/SA-T",
            json={
                "action": "RemoteStartTransaction",
                "payload": {"idTag": "GUEST", "connectorId": 1},
            },
        )
        assert remote.json() == {"status": "Accepted"}
        start = await charger.frames.wait_for(is_call("StartTransaction"), direction="sent")
        assert start.payload["idTag"] == "GUEST"
        answer = await charger.frames.wait_for(
            lambda f: f.message_id == start.message_id and f.frame is not None and f.frame.is_reply
        )
        assert answer.payload["idTagInfo"]["status"] == "Accepted"

        on = await api.post("/api/config", json={"autoChargeEnabled": True})
        assert on.json()["autoChargeEnabled"] is True

        async def stranger_accepted() -> bool:
            reply = await charger.authorize("STRANGER")
            return bool(reply.id_tag_info["status"] == "Accepted")

        await eventually(stranger_accepted)


async def test_offline_transaction_ids_are_unique_across_a_relay_restart(
    settings: Settings,
) -> None:
    """The ids come from blocks reserved on NATS: a restarted relay never reuses one."""
    issued = []
    for _ in range(2):
        async with (
            stack_running(settings) as stack,
            SimulatedCharger(stack.relay.url("SA-R"), "SA-R", version="1.6") as charger,
        ):
            await charger.boot()

            async def reserved_on_nats() -> int | None:
                started = await charger.start_transaction(connector=1, id_tag="X", meter_start=0)
                transaction_id: int = started.transaction_id
                # The first id may come before the first block arrived (clock-seeded).
                return transaction_id if transaction_id < FIRST + 10_000 else None

            issued.append(await eventually(reserved_on_nats))
    assert issued[1] > issued[0] >= FIRST


@pytest.mark.parametrize(
    ("version", "ready", "remote_start"),
    [
        ("1.6", "Preparing", "RemoteStartTransaction"),
        ("2.0.1", "Occupied", "RequestStartTransaction"),
    ],
)
async def test_automatic_charging_starts_a_ready_connector_with_the_default_tag(
    stack: Stack, version: str, ready: str, remote_start: str
) -> None:
    """autoChargeEnabled and no CSMS: a connector ready for a car gets a remote start with
    defaultIdTag, and the transaction that follows is accepted."""
    cp = f"AUTO-{version}"
    async with (
        SimulatedCharger(stack.relay.url(cp), cp, version=version) as charger,  # type: ignore[arg-type]
        stack.client() as api,
    ):
        await charger.boot()
        config = await api.post(
            "/api/config", json={"autoChargeEnabled": True, "defaultIdTag": "HOME-AUTO"}
        )
        assert config.status_code == 200

        async def started_automatically() -> bool:
            await charger.status(1, ready)
            return bool(charger.frames.find(is_call(remote_start), direction="received"))

        await eventually(started_automatically)
        call = charger.frames.find(is_call(remote_start), direction="received")[0]
        tag = call.payload["idTag"] if version == "1.6" else call.payload["idToken"]["idToken"]
        assert tag == "HOME-AUTO"
        answer = await charger.frames.wait_for(
            lambda f: f.message_id == call.message_id and f.frame is not None and f.frame.is_reply,
            direction="sent",
        )
        assert answer.payload["status"] == "Accepted"
        begun = "StartTransaction" if version == "1.6" else "TransactionEvent"
        transaction = await charger.frames.wait_for(is_call(begun), direction="sent")
        assert "HOME-AUTO" in transaction.text
