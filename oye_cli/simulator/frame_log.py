"""Every raw frame a peer received and sent, in order, and a way to wait for one.

:class:`RecordingConnection` sits between an ``ocpp`` peer and its websocket: what passes
its ``recv()`` and ``send()`` is appended to a :class:`FrameLog` *before* the peer sees it
(received) or the socket gets it (sent), so the log's order is the peer's order. Waiting
for a frame uses one future per waiter, resolved when a matching frame is recorded; nobody
polls::

    async with asyncio.timeout(5):
        frame = await log.wait_for(is_call("Heartbeat"), direction="sent")
    assert frame.payload == {}

A log that runs for long (``oye simulate``) keeps only its last ``limit`` frames; indexes
keep counting, so ``since`` stays meaningful. A ``listener`` sees every frame as it is
recorded (the simulator prints one line per frame with it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, Protocol

from oye_shared.frames import Frame, FrameError, MessageType, parse_frame

logger = logging.getLogger(__name__)

Direction = Literal["received", "sent"]
Predicate = Callable[["RecordedFrame"], bool]
Listener = Callable[["RecordedFrame"], None]


@dataclass(frozen=True)
class RecordedFrame:
    """One frame as it went over the wire, with its position in the log."""

    index: int
    direction: Direction
    text: str

    @cached_property
    def frame(self) -> Frame | None:
        """The parsed frame, or ``None`` when the text is not a well-formed OCPP-J frame."""
        try:
            return parse_frame(self.text)
        except FrameError:
            return None

    @property
    def message_type(self) -> MessageType | None:
        return self.frame.message_type if self.frame else None

    @property
    def message_id(self) -> str | None:
        return self.frame.message_id if self.frame else None

    @property
    def action(self) -> str | None:
        return self.frame.action if self.frame else None

    @property
    def payload(self) -> Any:
        return self.frame.payload if self.frame else None


def is_call(action: str | None = None) -> Predicate:
    """Match a CALL, of ``action`` when given."""

    def predicate(recorded: RecordedFrame) -> bool:
        return recorded.message_type is MessageType.CALL and action in (None, recorded.action)

    return predicate


def is_reply_to(message_id: str) -> Predicate:
    """Match the CALLRESULT or CALLERROR that answers ``message_id``."""

    def predicate(recorded: RecordedFrame) -> bool:
        return (
            recorded.message_type in (MessageType.CALLRESULT, MessageType.CALLERROR)
            and recorded.message_id == message_id
        )

    return predicate


@dataclass
class _Waiter:
    predicate: Predicate
    direction: Direction | None
    since: int
    future: asyncio.Future[RecordedFrame]


@dataclass
class FrameLog:
    """Frames in the order they passed, both directions; see the module docstring.

    ``frames`` holds the retained frames (all of them unless ``limit`` is set).
    """

    frames: list[RecordedFrame] = field(default_factory=list)
    limit: int | None = None
    listener: Listener | None = field(default=None, repr=False)
    _dropped: int = field(default=0, repr=False)
    _waiters: list[_Waiter] = field(default_factory=list, repr=False)

    @property
    def next_index(self) -> int:
        """The index the next recorded frame gets (a ``since`` for "from now on")."""
        return self._dropped + len(self.frames)

    @property
    def received(self) -> list[str]:
        """The text of every received frame, in order."""
        return [f.text for f in self.frames if f.direction == "received"]

    @property
    def sent(self) -> list[str]:
        """The text of every sent frame, in order."""
        return [f.text for f in self.frames if f.direction == "sent"]

    def record(self, direction: Direction, text: str) -> RecordedFrame:
        """Append one frame, tell the listener, and wake the waiters it matches."""
        recorded = RecordedFrame(self.next_index, direction, text)
        self.frames.append(recorded)
        if self.limit is not None and len(self.frames) > self.limit:
            surplus = len(self.frames) - self.limit
            del self.frames[:surplus]
            self._dropped += surplus
        if self.listener is not None:
            try:
                self.listener(recorded)
            except Exception:  # a display problem must not break the connection
                logger.exception("frame listener failed on frame %d", recorded.index)
        for waiter in list(self._waiters):
            if waiter.future.done() or not _fits(waiter, recorded):
                continue
            try:
                matched = waiter.predicate(recorded)
            except Exception as exc:
                waiter.future.set_exception(exc)
                continue
            if matched:
                waiter.future.set_result(recorded)
        return recorded

    def find(
        self, predicate: Predicate, *, direction: Direction | None = None, since: int = 0
    ) -> list[RecordedFrame]:
        """Every retained frame from index ``since`` on that matches."""
        retained = self.frames[max(since - self._dropped, 0) :]
        return [f for f in retained if direction in (None, f.direction) and predicate(f)]

    async def wait_for(
        self,
        predicate: Predicate,
        *,
        direction: Direction | None = "received",
        since: int = 0,
    ) -> RecordedFrame:
        """The first frame from index ``since`` on that matches, waiting if none did yet.

        ``direction=None`` looks at both directions. Bound the wait with ``asyncio.timeout``.
        """
        found = self.find(predicate, direction=direction, since=since)
        if found:
            return found[0]
        future: asyncio.Future[RecordedFrame] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(predicate, direction, since, future)
        self._waiters.append(waiter)
        try:
            return await future
        finally:
            self._waiters.remove(waiter)
            future.cancel()


def _fits(waiter: _Waiter, recorded: RecordedFrame) -> bool:
    return recorded.index >= waiter.since and waiter.direction in (None, recorded.direction)


class WebSocketLike(Protocol):
    """The part of a ``websockets`` connection the recorder wraps."""

    async def recv(self) -> str | bytes: ...

    async def send(self, message: str) -> None: ...


class RecordingConnection:
    """A thin adapter over a websocket that records every frame into a :class:`FrameLog`.

    Binary frames are decoded as UTF-8 (invalid bytes replaced) and handed on as text.
    """

    def __init__(self, websocket: WebSocketLike, log: FrameLog) -> None:
        self.websocket = websocket
        self.log = log

    async def recv(self) -> str:
        data = await self.websocket.recv()
        text = data if isinstance(data, str) else data.decode("utf-8", errors="replace")
        self.log.record("received", text)
        return text

    async def send(self, message: str) -> None:
        self.log.record("sent", message)
        await self.websocket.send(message)
