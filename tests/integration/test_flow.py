"""oye_relay.flow: frames handled at once or behind those that wait, in wire order, and a
source that is no longer read while its destination or its backlog is full."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.typing import Data

from oye_relay.flow import Flow
from oye_relay.legs import WebSocketLeg
from tests.support.legs import server_leg
from tests.support.relay import eventually

pytestmark = pytest.mark.integration


class Handled:
    """What the flow's two handlers saw, in order, with the path each frame took."""

    def __init__(self, count: int) -> None:
        self.frames: list[tuple[str, Data]] = []
        self.count = count
        self.all_there = asyncio.Event()

    def add(self, path: str, message: Data) -> None:
        self.frames.append((path, message))
        if len(self.frames) >= self.count:
            self.all_there.set()

    @property
    def messages(self) -> list[Data]:
        return [message for _, message in self.frames]


def reading(connection: WebSocketLeg) -> bool:
    return connection.transport.is_reading()


def is_paused(connection: WebSocketLeg) -> object:
    async def check() -> bool:
        return not reading(connection)

    return check


def is_reading(connection: WebSocketLeg) -> object:
    async def check() -> bool:
        return reading(connection)

    return check


def no_error() -> None:
    raise AssertionError("no handler should fail")


async def test_frames_behind_one_that_waits_wait_too_and_keep_their_order() -> None:
    """Then, with the backlog worked off, frames are handled at once again."""
    sent: list[Data] = ["a", "wait", "b", b"c", "slow", "d"]
    handled = Handled(len(sent))
    release = asyncio.Event()

    def now(message: Data) -> bool:
        if message in ("wait", "slow"):
            return False
        handled.add("now", message)
        return True

    async def later(message: Data) -> None:
        if message == "wait":
            await release.wait()
        handled.add("later", message)

    async with server_leg() as (source, peer):
        flow = Flow(
            source, now=now, later=later, destination=lambda: None, on_error=no_error, name="t"
        )
        flow.start()
        for message in sent:
            await peer.send(message)
        await (await peer.ping())  # every frame before the ping has been delivered
        assert handled.frames == [("now", "a")]
        release.set()
        await handled.all_there.wait()
        assert handled.frames == [("now", "a")] + [("later", m) for m in sent[1:]]

        handled.count += 1
        handled.all_there.clear()
        await peer.send("e")
        await handled.all_there.wait()
        assert handled.frames[-1] == ("now", "e")


async def test_a_long_backlog_stops_reading_the_source_until_it_is_worked_off() -> None:
    sent = [f"m{i}" for i in range(12)]
    handled = Handled(len(sent))
    release = asyncio.Event()

    async def later(message: Data) -> None:
        await release.wait()
        handled.add("later", message)

    async with server_leg() as (source, peer):
        flow = Flow(
            source,
            now=lambda message: False,
            later=later,
            destination=lambda: None,
            on_error=no_error,
            name="t",
            high=4,
            low=1,
        )
        flow.start()
        for message in sent:
            await peer.send(message)  # small frames: they fit the kernel's buffers
        await eventually(is_paused(source))
        release.set()
        await handled.all_there.wait()
        assert handled.messages == sent
        assert reading(source)


async def test_a_destination_that_does_not_read_stops_reading_the_source() -> None:
    """Backpressure: the relay's buffers stay bounded; once the destination reads again,
    every frame arrives, in order, and the source is read again."""
    message = "x" * 65_536
    count = 300  # ~20 MB: more than the kernel's loopback buffers take
    async with AsyncExitStack() as stack:
        source, sender = await stack.enter_async_context(server_leg())
        destination, reader = await stack.enter_async_context(server_leg())

        def now(message: Data) -> bool:
            if not destination.writable():
                return False
            destination.write(message)
            return True

        async def later(message: Data) -> None:
            await destination.send(message)

        flow = Flow(
            source,
            now=now,
            later=later,
            destination=lambda: destination,
            on_error=no_error,
            name="t",
        )
        flow.start()
        reader.transport.pause_reading()
        sending_task = asyncio.create_task(
            _send_all(sender, [f"{i}{message}" for i in range(count)])
        )
        await eventually(is_paused(source))
        assert not sending_task.done()
        # The destination's buffer holds about its high-water mark and a frame or two.
        assert destination.transport.get_write_buffer_size() <= 2**15 + 2 * (len(message) + 20)

        reader.transport.resume_reading()
        received = [await reader.recv() for _ in range(count)]
        await sending_task
        assert received == [f"{i}{message}" for i in range(count)]
        await eventually(is_reading(source))


async def test_a_handler_that_raises_is_logged_and_the_flow_stops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handled = Handled(1)
    failed = asyncio.Event()

    def now(message: Data) -> bool:
        if message == "boom":
            raise RuntimeError("a bug")
        handled.add("now", message)
        return True

    async def later(message: Data) -> None:
        raise AssertionError("not reached")

    async with server_leg() as (source, peer):
        flow = Flow(
            source,
            now=now,
            later=later,
            destination=lambda: None,
            on_error=failed.set,
            name="charger 'CP1'",
        )
        flow.start()
        with caplog.at_level(logging.ERROR, logger="oye_relay.flow"):
            await peer.send("fine")
            await peer.send("boom")
            await peer.send("dropped")
            await failed.wait()
            await (await peer.ping())
        assert handled.messages == ["fine"]
        assert "charger 'CP1' failed" in caplog.text
        assert "a bug" in caplog.text


async def _send_all(connection: ClientConnection, messages: list[str]) -> None:
    for message in messages:
        await connection.send(message)
