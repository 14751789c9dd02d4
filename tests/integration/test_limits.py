"""Persistent charging limits through ``/api/chargers/{id}/smart-charging``, real peers.

The proxy's profile uses the reserved id and stack level, is re-applied after a reconnect,
a BootNotification and a CSMS clear, never touches the CSMS's own profile, and neither the
calls nor their answers ever reach the CSMS.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from nats.aio.client import Client
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from oye_cli.simulator import SimulatedCharger
from oye_cli.simulator.frame_log import RecordedFrame, is_call, is_reply_to
from oye_shared.kv import get_entry, open_state_buckets
from oye_shared.settings import Settings
from oye_shared.subjects import kv_key
from tests.peers.csms import ChargerHandle, CsmsServer
from tests.support.relay import eventually, relay_running
from tests.support.stack import Stack, stack_running

pytestmark = pytest.mark.integration

OURS = 9_000_001
CSMS_PROFILE = 7
WAIT = 15.0


@pytest.fixture
async def site(settings: Settings) -> AsyncIterator[tuple[Stack, CsmsServer]]:
    async with (
        CsmsServer() as csms,
        stack_running(settings.model_copy(update={"upstream_url": csms.url})) as stack,
    ):
        yield stack, csms


def is_set_of(profile_id: int) -> Any:
    def predicate(recorded: RecordedFrame) -> bool:
        if recorded.action != "SetChargingProfile" or not isinstance(recorded.payload, dict):
            return False
        profile = recorded.payload.get("csChargingProfiles") or recorded.payload.get(
            "chargingProfile", {}
        )
        return profile_id in (profile.get("chargingProfileId"), profile.get("id"))

    return predicate


is_our_set = is_set_of(OURS)


async def applied(charger: SimulatedCharger, since: int) -> dict[str, Any]:
    """Wait for our SetChargingProfile from frame ``since`` on, and the charger's answer."""
    async with asyncio.timeout(WAIT):
        sent = await charger.frames.wait_for(is_our_set, since=since)
        assert sent.message_id is not None
        assert sent.message_id.startswith("oye-")
        answer = await charger.frames.wait_for(
            is_reply_to(sent.message_id), direction="sent", since=sent.index
        )
    assert isinstance(answer.payload, dict)
    return answer.payload


def profile_ids(charger: SimulatedCharger) -> set[int]:
    return {p.id for p in charger.peer.state.profiles.profiles}


def our_limit(charger: SimulatedCharger) -> Decimal:
    (ours,) = charger.peer.state.profiles.select(profile_id=OURS)
    assert ours.stack_level == 8
    assert ours.purpose == "ChargePointMaxProfile"
    return ours.periods[0].limit


def csms_profile() -> Any:
    return call16.SetChargingProfile(
        connector_id=0,
        cs_charging_profiles={
            "chargingProfileId": CSMS_PROFILE,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": {
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 20.0}],
            },
        },
    )


def csms_saw_nothing_of_ours(handle: ChargerHandle) -> None:
    assert not [f for f in handle.frames.frames if (f.message_id or "").startswith("oye-")]
    assert not handle.calls("SetChargingProfile")
    assert not handle.calls("ClearChargingProfile")


async def test_a_persistent_limit_holds_and_leaves_the_csms_profile_alone(
    site: tuple[Stack, CsmsServer],
) -> None:
    stack, csms = site
    cp = "LIM-16"
    async with stack.client() as api:
        async with SimulatedCharger(stack.relay.url(cp), cp, version="1.6") as charger:
            await charger.boot()
            async with asyncio.timeout(WAIT):
                handle = await csms.wait_for_charger(cp)
            assert (await handle.call(csms_profile())).status == "Accepted"

            mark = len(charger.frames.frames)
            reply = await api.post(f"/api/chargers/{cp}/smart-charging", json={"maxPower": 16})
            assert reply.status_code == 200, reply.text
            assert reply.json() == {"status": "Accepted"}
            assert await applied(charger, mark) == {"status": "Accepted"}
            assert our_limit(charger) == 16
            assert profile_ids(charger) == {CSMS_PROFILE, OURS}

            # A reboot: re-applied once the CSMS accepted the BootNotification.
            mark = len(charger.frames.frames)
            await charger.boot()
            assert await applied(charger, mark) == {"status": "Accepted"}

            # The CSMS clears everything: ours comes back, the CSMS's is gone as it asked.
            mark = len(charger.frames.frames)
            cleared = await handle.call(call16.ClearChargingProfile())
            assert cleared.status == "Accepted"
            assert await applied(charger, mark) == {"status": "Accepted"}
            assert profile_ids(charger) == {OURS}
            assert (await handle.call(csms_profile())).status == "Accepted"
            csms_saw_nothing_of_ours(handle)

        # A reconnect without a boot: re-applied right away.
        async with SimulatedCharger(stack.relay.url(cp), cp, version="1.6") as charger:
            async with asyncio.timeout(WAIT):
                handle = await csms.wait_for_charger(cp, newer_than=handle)
            await charger.heartbeat()
            assert await applied(charger, 0) == {"status": "Accepted"}
            assert our_limit(charger) == 16
            assert (await handle.call(csms_profile())).status == "Accepted"

            # Clear removes ours only, and the stored limit with it.
            mark = len(charger.frames.frames)
            reply = await api.post(f"/api/chargers/{cp}/smart-charging", json={"action": "clear"})
            assert reply.status_code == 200, reply.text
            assert reply.json() == {"status": "Accepted"}
            clears = charger.frames.find(
                lambda f: f.action == "ClearChargingProfile", direction="received", since=mark
            )
            assert [c.payload for c in clears] == [{"id": OURS + 1}, {"id": OURS + 2}, {"id": OURS}]
            assert profile_ids(charger) == {CSMS_PROFILE}

            # Nothing stored any more: a reboot brings no profile.
            mark = len(charger.frames.frames)
            await charger.boot()
            await charger.heartbeat()
            assert not charger.frames.find(is_our_set, since=mark)
            csms_saw_nothing_of_ours(handle)


async def test_201_limits_have_the_201_shape_and_are_accepted(
    site: tuple[Stack, CsmsServer],
) -> None:
    stack, csms = site
    cp = "LIM-201"
    async with (
        stack.client() as api,
        SimulatedCharger(stack.relay.url(cp), cp, version="2.0.1") as charger,
    ):
        await charger.boot()
        async with asyncio.timeout(WAIT):
            handle = await csms.wait_for_charger(cp)

        mark = len(charger.frames.frames)
        reply = await api.post(f"/api/chargers/{cp}/smart-charging", json={"maxPower": 20})
        assert reply.status_code == 200, reply.text
        assert reply.json()["status"] == "Accepted"
        async with asyncio.timeout(WAIT):
            sent = await charger.frames.wait_for(is_our_set, since=mark)
        assert sent.payload["evseId"] == 0
        profile = sent.payload["chargingProfile"]
        assert profile["chargingProfilePurpose"] == "ChargingStationMaxProfile"
        assert profile["chargingProfileKind"] == "Absolute"
        (schedule,) = profile["chargingSchedule"]
        assert schedule["id"] == 1
        assert schedule["startSchedule"].endswith("T00:00:00Z")
        assert schedule["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 20.0}]

        mark = len(charger.frames.frames)
        reply = await api.post(f"/api/chargers/{cp}/smart-charging", json={"sessionLimit": 10})
        assert reply.status_code == 200, reply.text
        assert reply.json()["status"] == "Accepted"
        async with asyncio.timeout(WAIT):
            sent = await charger.frames.wait_for(is_set_of(OURS + 1), since=mark)
        profile = sent.payload["chargingProfile"]
        assert profile["chargingProfilePurpose"] == "TxDefaultProfile"
        assert profile["chargingProfileKind"] == "Relative"
        assert profile["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"] == 10.0

        # A CSMS clear of the station maximum, then a reboot: re-applied each time.
        mark = len(charger.frames.frames)
        cleared = await handle.call(
            call201.ClearChargingProfile(
                charging_profile_criteria={"chargingProfilePurpose": "ChargingStationMaxProfile"}
            )
        )
        assert cleared.status == "Accepted"
        assert (await applied(charger, mark))["status"] == "Accepted"
        mark = len(charger.frames.frames)
        await charger.boot()
        assert (await applied(charger, mark))["status"] == "Accepted"
        await charger.heartbeat()
        csms_saw_nothing_of_ours(handle)


async def test_the_endpoint_refuses_what_it_cannot_do(site: tuple[Stack, CsmsServer]) -> None:
    stack, _ = site
    async with stack.client() as api:
        unknown = await api.post("/api/chargers/NOBODY/smart-charging", json={"maxPower": 16})
        assert unknown.status_code == 404
        both = await api.post(
            "/api/chargers/NOBODY/smart-charging", json={"maxPower": 16, "sessionLimit": 8}
        )
        assert both.status_code == 422
    async with stack.client(password="wrong") as stranger:
        anonymous = await stranger.post(
            "/api/chargers/NOBODY/smart-charging", json={"maxPower": 16}
        )
        assert anonymous.status_code == 401


async def test_a_limit_reaches_a_charger_the_fleets_kv_does_not_know_yet(
    settings: Settings, nc: Client
) -> None:
    """The relay writes a charger's KV entry a moment after it connects: the API asks the
    relay holding it instead, so a limit set right after the boot is not a 404."""
    cp = "LIM-NEW"
    _, chargers, _ = await open_state_buckets(nc, settings.subject_prefix)
    async with (
        stack_running(settings) as stack,
        stack.client() as api,
        SimulatedCharger(stack.relay.url(cp), cp, version="1.6") as charger,
    ):
        await charger.boot()
        await eventually(lambda: get_entry(chargers, kv_key(cp)))
        await chargers.purge(kv_key(cp))  # as if not written yet
        mark = len(charger.frames.frames)
        reply = await api.post(f"/api/chargers/{cp}/smart-charging", json={"maxPower": 10})
        assert reply.json() == {"status": "Accepted"}
        assert await applied(charger, mark) == {"status": "Accepted"}
        assert our_limit(charger) == Decimal(10)


async def test_standalone_the_limit_follows_the_proxys_own_boot_answer(
    settings: Settings,
) -> None:
    """No CSMS: the boot is accepted by the proxy, and the limit follows it; a session
    limit bound to a running transaction goes to its connector as a TxProfile."""
    cp = "LIM-SA"
    async with (
        stack_running(settings) as stack,
        stack.client() as api,
        SimulatedCharger(stack.relay.url(cp), cp, version="1.6") as charger,
    ):
        await charger.boot()
        reply = await api.post(f"/api/chargers/{cp}/smart-charging", json={"maxPower": 12.5})
        assert reply.json() == {"status": "Accepted"}

        mark = len(charger.frames.frames)
        await charger.boot()
        assert await applied(charger, mark) == {"status": "Accepted"}
        assert our_limit(charger) == Decimal("12.5")

        started = await charger.start_transaction(connector=2, id_tag="X", meter_start=0)

        async def transaction_known() -> bool:
            found = await api.get(f"/api/chargers/{cp}")  # 404 until the KV entry is there
            return found.is_success and str(started.transaction_id) in found.json()["transactions"]

        await eventually(transaction_known)  # the API finds the connector in the KV state
        mark = len(charger.frames.frames)
        reply = await api.post(
            f"/api/chargers/{cp}/smart-charging",
            json={"sessionLimit": 6, "transactionId": started.transaction_id},
        )
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"status": "Accepted"}
        sent = charger.frames.find(is_set_of(OURS + 2), direction="received", since=mark)[0]
        assert sent.payload["connectorId"] == 2
        profile = sent.payload["csChargingProfiles"]
        assert profile["chargingProfilePurpose"] == "TxProfile"
        assert profile["transactionId"] == started.transaction_id
        assert profile_ids(charger) == {OURS, OURS + 2}


async def test_the_failsafe_limit_holds_while_the_csms_is_unreachable(
    settings: Settings,
) -> None:
    """OYE_FAILSAFE_LIMIT: set when the CSMS link is lost, cleared when it is back; the
    CSMS sees neither."""
    csms = CsmsServer()
    await csms.start()
    failsafe = settings.model_copy(update={"upstream_url": csms.url, "failsafe_limit": 10.0})
    try:
        async with (
            relay_running(failsafe) as relay,
            SimulatedCharger(relay.url("FS-1"), "FS-1", version="1.6") as charger,
            asyncio.timeout(60),
        ):
            await charger.boot()
            await csms.wait_for_charger("FS-1")
            await csms.stop()
            applied = await charger.frames.wait_for(is_call("SetChargingProfile"))
            profile = applied.payload["csChargingProfiles"]
            assert profile["chargingProfileId"] == failsafe.limit_profile_id + 3
            assert profile["chargingProfilePurpose"] == "TxDefaultProfile"
            assert profile["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 10.0
            await csms.start()
            cleared = await charger.frames.wait_for(is_call("ClearChargingProfile"))
            assert cleared.payload == {"id": failsafe.limit_profile_id + 3}
            handle = await csms.wait_for_charger("FS-1")
            await charger.heartbeat()
        assert not handle.calls("SetChargingProfile")
        assert not handle.calls("ClearChargingProfile")
    finally:
        await csms.stop()
