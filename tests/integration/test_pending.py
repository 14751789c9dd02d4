"""oye_relay.pending: a charger held until the owner approves it is answered Pending,
and one that does not read its answers is not read either."""

from __future__ import annotations

import asyncio
import json

import pytest

from oye_relay.pending import hold_pending
from oye_relay.publisher import Publisher
from oye_relay.traffic import TrafficTap
from oye_shared.subjects import Subjects
from tests.support.legs import server_leg
from tests.support.relay import eventually

pytestmark = pytest.mark.integration


async def test_a_pending_charger_that_does_not_read_its_answers_is_not_read_either() -> None:
    count = 3_000
    tap = TrafficTap(
        publisher=Publisher(capacity=10 * count),
        subjects=Subjects("t"),
        charge_point_id="CP-P",
        relay_id="r",
        session_id="s",
    )
    async with server_leg() as (leg, client):
        holding = asyncio.create_task(hold_pending(leg, tap))
        client.transport.pause_reading()

        async def flood() -> None:
            for n in range(count):
                await client.send(f'[2,"m{n}","StatusNotification",{{}}]')

        sending = asyncio.create_task(flood())
        await eventually(lambda: not leg.transport.is_reading())
        client.transport.resume_reading()
        answers = [json.loads(await client.recv()) for _ in range(count)]
        assert [a[1] for a in answers] == [f"m{n}" for n in range(count)]
        assert {a[2] for a in answers} == {"SecurityError"}
        await sending
        assert leg.transport.is_reading()
        await client.close()
        await holding
