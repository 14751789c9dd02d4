"""The lane moves on without a task: on the answer, at the deadline, past expired calls."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from oye_relay.lane import CallLane, LaneCall, Origin, Reply
from oye_relay.lane_keeper import LaneKeeper
from oye_shared.frames import parse_frame


class Charger:
    """The lane, its keeper, and what reached the charger."""

    def __init__(self) -> None:
        self.lane = CallLane()
        self.sent: list[str] = []
        self.timed_out: list[str] = []
        self.tasks: set[asyncio.Task[Any]] = set()
        self.keeper = LaneKeeper(
            self.lane,
            send=self.send,
            timed_out=lambda call: self.timed_out.append(call.message_id),
            spawn=self.spawn,
        )

    async def send(self, call: LaneCall) -> None:
        self.keeper.sent(call)
        self.sent.append(call.message_id)

    def spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def submit(self, message_id: str, seconds: float) -> LaneCall:
        call = LaneCall(
            message_id=message_id,
            action="GetConfiguration",
            text="",
            origin=Origin.CSMS,
            deadline=asyncio.get_running_loop().time() + seconds,
        )
        if self.lane.submit(call):
            await self.send(call)
        return call


def answer(call: LaneCall) -> None:
    text = f'[3,"{call.message_id}",{{}}]'
    call.settle(Reply(parse_frame(text), text))


async def past(deadline: float) -> None:
    """Wait until the loop's clock has passed a call's deadline (what a timeout is about)."""
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, deadline - loop.time()) + 0.001)
    assert loop.time() > deadline


async def settle_loop() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_an_answer_frees_the_lane_and_the_next_call_goes_at_once() -> None:
    charger = Charger()
    first = await charger.submit("a", 10)
    await charger.submit("b", 10)
    assert charger.sent == ["a"]
    answer(first)
    await settle_loop()
    assert charger.sent == ["a", "b"]
    assert charger.lane.in_flight is not None
    assert charger.lane.in_flight.message_id == "b"
    assert charger.timed_out == []


async def test_a_call_unanswered_by_its_deadline_times_out_and_the_lane_moves_on() -> None:
    charger = Charger()
    first = await charger.submit("a", 0.05)
    await charger.submit("b", 10)
    async with asyncio.timeout(2):
        assert await first.answer is None
    await settle_loop()
    assert charger.timed_out == ["a"]
    assert charger.sent == ["a", "b"]


async def test_a_call_that_expired_while_waiting_is_not_sent() -> None:
    charger = Charger()
    first = await charger.submit("a", 10)
    expired = await charger.submit("b", 0.01)
    await charger.submit("c", 10)
    await past(expired.deadline)
    answer(first)
    await settle_loop()
    assert expired.answer.done()
    assert expired.answer.result() is None
    assert charger.timed_out == ["b"]
    assert charger.sent == ["a", "c"]


async def test_a_late_answer_after_the_timeout_changes_nothing() -> None:
    charger = Charger()
    first = await charger.submit("a", 0.01)
    async with asyncio.timeout(2):
        assert await first.answer is None  # timed out
    await settle_loop()
    answer(first)  # settles nothing: the lane has moved on
    await settle_loop()
    assert charger.timed_out == ["a"]
    assert charger.lane.in_flight is None


async def test_once_stopped_and_drained_nothing_is_sent_or_timed_out() -> None:
    charger = Charger()
    first = await charger.submit("a", 0.05)
    await charger.submit("b", 10)
    charger.keeper.stop()
    for call in charger.lane.drain():
        call.settle(None)
    await past(first.deadline)  # its timer would have fired by now
    await settle_loop()
    assert charger.sent == ["a"]
    assert charger.timed_out == []
