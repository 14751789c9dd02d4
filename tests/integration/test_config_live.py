"""The owner's configuration (POST /api/config) reaches the relay live."""

from __future__ import annotations

import json

import pytest
from websockets.asyncio.client import connect

from oye_shared.settings import Settings
from tests.support.raw_csms import RawCsms
from tests.support.relay import eventually
from tests.support.stack import Stack, stack_running

pytestmark = pytest.mark.integration


async def heartbeat_reaches(stack: Stack, charge_point_id: str) -> str:
    """Connect a charger, send a Heartbeat, return who answered it."""
    async with connect(stack.relay.url(charge_point_id), subprotocols=["ocpp1.6"]) as charger:  # type: ignore[list-item]
        await charger.send('[2,"hb","Heartbeat",{}]')
        answer = json.loads(await charger.recv())
    return "proxy" if "currentTime" in answer[2] else "csms"


async def test_a_new_csms_url_and_forwarding_off_apply_to_new_connections(
    settings: Settings,
) -> None:
    """targetCsmsUrl moves new chargers to another CSMS; forwarding off serves them here."""
    async with (
        RawCsms() as first,
        RawCsms() as second,
        stack_running(settings.model_copy(update={"upstream_url": first.url})) as stack,
        stack.client() as api,
    ):
        assert await heartbeat_reaches(stack, "CP-A") == "csms"
        assert [c.charge_point_id for c in first.connections] == ["CP-A"]

        moved = await api.post("/api/config", json={"targetCsmsUrl": second.url})
        assert moved.json()["targetCsmsUrl"] == second.url
        counter = iter(range(1000))

        async def reaches_second() -> bool:
            await heartbeat_reaches(stack, f"CP-B{next(counter)}")
            return bool(second.connections)

        await eventually(reaches_second)

        off = await api.post("/api/config", json={"csmsForwardingEnabled": False})
        assert off.json()["csmsForwardingEnabled"] is False

        last: list[str] = []

        async def served_here() -> bool:
            last.append(f"CP-C{next(counter)}")
            return await heartbeat_reaches(stack, last[-1]) == "proxy"

        await eventually(served_here)
        everyone = [c.charge_point_id for c in first.connections + second.connections]
        # (Chargers tried before the relay saw the change may have gone upstream.)
        assert last[-1] not in everyone
