"""oye_relay.leg_reader: a leg's messages, in order, for a reader that takes its time."""

from __future__ import annotations

import pytest

from oye_relay.leg_reader import LegReader
from oye_relay.legs import MAX_QUEUED
from tests.support.legs import csms, open_to
from tests.support.relay import eventually

pytestmark = pytest.mark.integration


async def test_every_message_in_order_then_the_end() -> None:
    async with csms() as (url, accepted):
        leg = await open_to(url)
        peer = await accepted.get()
        reader = LegReader(leg)
        for n in range(3):
            await peer.send(f"m{n}")
        await peer.close()
        assert [message async for message in reader] == ["m0", "m1", "m2"]


async def test_reading_pauses_while_the_reader_lags_and_resumes_as_it_catches_up() -> None:
    count = 3 * MAX_QUEUED
    async with csms() as (url, accepted):
        leg = await open_to(url)
        peer = await accepted.get()
        reader = LegReader(leg)
        for n in range(count):
            await peer.send(f"m{n}")
        await eventually(lambda: not leg.transport.is_reading())
        received = [await anext(reader) for _ in range(count)]
        assert received == [f"m{n}" for n in range(count)]
        assert leg.transport.is_reading()
        await leg.close()
