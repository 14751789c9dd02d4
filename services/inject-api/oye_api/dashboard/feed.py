"""What one browser receives over the live WebSocket, and how much of it may wait. Pure.

Messages are JSON text, built once per NATS message and shared by every browser:

=========================  ===========================================================
``{"type": "chargers"}``   the whole fleet (``chargers``: a list), first on connect
``{"type": "charger"}``    one charger's new state (``charger``), or ``removed: id``
``{"type": "frame"}``      a frame as it passed: ``cp``, ``direction``, ``time``,
                           ``ts`` (Unix seconds), ``frameId``, ``messageType``,
                           ``messageId``, ``action``, ``raw``, ``truncated``, ...
``{"type": "event"}``      a connection event: ``cp``, ``kind``, ``time``, ``ts``,
                           ``frameId``, ``raw`` (its JSON body)
``{"type": "dropped"}``    ``count`` frames were skipped because this browser read too
                           slowly (the log still has them)
=========================  ===========================================================

A browser's :class:`FeedFilter` (charger, direction, action) selects the frames it gets;
events are few and always sent (the page uses them to refresh what they concern, e.g. a
charger's replay backlog after ``replayed``), and the page filters what it shows.

A :class:`ClientQueue` holds what waits for one browser. Charger states are coalesced by
id (only the newest matters, so they are never dropped and never pile up); frames and
events are bounded by count and bytes, and when either bound is hit the *oldest* go
first: a live view wants the newest, and the skipped ones are announced with
``dropped``. Nothing here ever blocks the caller.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from oye_shared import headers as h

#: Frames and events waiting for one browser, at most (the oldest are dropped first).
MAX_QUEUED_FRAMES = 1000
#: ... and at most this many bytes of them.
MAX_QUEUED_BYTES = 4 * 1024 * 1024
#: A frame's text beyond this is cut in the live view (``truncated``); the log keeps it all.
MAX_LIVE_FRAME_CHARS = 64 * 1024


@dataclass(frozen=True, slots=True)
class FeedFilter:
    """Which frames and events a browser wants; None matches anything."""

    charge_point_id: str | None = None
    direction: str | None = None
    action: str | None = None

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> FeedFilter:
        def text(key: str) -> str | None:
            value = message.get(key)
            return value if isinstance(value, str) and value else None

        return cls(text("chargePointId"), text("direction"), text("action"))

    def accepts(self, charge_point_id: str, direction: str | None, action: str | None) -> bool:
        if self.charge_point_id is not None and charge_point_id != self.charge_point_id:
            return False
        # Events have no direction: a direction filter leaves them out, as the log does.
        if self.direction is not None and direction != self.direction:
            return False
        return self.action is None or action == self.action

    def matches(self, item: FeedItem) -> bool:
        return self.accepts(item.charge_point_id, item.direction, item.action)


@dataclass(frozen=True, slots=True)
class FeedItem:
    """A frame or event, encoded once; what the filters look at."""

    charge_point_id: str
    direction: str | None
    action: str | None
    text: str


def _seconds(rfc3339: str | None) -> float | None:
    if not rfc3339:
        return None
    try:
        return datetime.fromisoformat(rfc3339).timestamp()
    except ValueError:
        return None


def _text(data: bytes) -> tuple[str, str]:
    """The body as text and its encoding (``utf-8``, or ``hex`` for bytes that are not)."""
    try:
        return data.decode(), "utf-8"
    except UnicodeDecodeError:
        return data.hex(), "hex"


def frame_item(charge_point_id: str, headers: Mapping[str, str], data: bytes) -> FeedItem:
    """A ``{prefix}.frames.>`` message as a ``frame`` item."""
    raw, encoding = _text(data)
    truncated = len(raw) > MAX_LIVE_FRAME_CHARS
    direction = headers.get(h.DIRECTION)
    action = headers.get(h.ACTION)
    body = {
        "type": "frame",
        "cp": charge_point_id,
        "direction": direction,
        "time": headers.get(h.TIME),
        "ts": _seconds(headers.get(h.TIME)),
        "frameId": headers.get(h.FRAME_ID),
        "messageType": headers.get(h.MESSAGE_TYPE),
        "messageId": headers.get(h.MESSAGE_ID),
        "action": action,
        "error": headers.get(h.ERROR),
        "binary": headers.get(h.BINARY) == "1",
        "encoding": encoding,
        "raw": raw[:MAX_LIVE_FRAME_CHARS],
        "truncated": truncated,
    }
    return FeedItem(charge_point_id, direction, action, json.dumps(body, ensure_ascii=False))


def event_item(
    charge_point_id: str, kind: str, headers: Mapping[str, str], data: bytes
) -> FeedItem:
    """A ``{prefix}.events.>`` message as an ``event`` item (its kind is its action)."""
    raw, _ = _text(data)
    body = {
        "type": "event",
        "cp": charge_point_id,
        "kind": kind,
        "time": headers.get(h.TIME),
        "ts": _seconds(headers.get(h.TIME)),
        "frameId": headers.get(h.FRAME_ID),
        "raw": raw[:MAX_LIVE_FRAME_CHARS],
    }
    return FeedItem(charge_point_id, None, kind, json.dumps(body, ensure_ascii=False))


def chargers_message(chargers: list[dict[str, Any]]) -> str:
    return json.dumps({"type": "chargers", "chargers": chargers}, ensure_ascii=False)


def charger_message(charger: dict[str, Any]) -> str:
    return json.dumps({"type": "charger", "charger": charger}, ensure_ascii=False)


def removed_message(charge_point_id: str) -> str:
    return json.dumps({"type": "charger", "removed": charge_point_id}, ensure_ascii=False)


def dropped_message(count: int) -> str:
    return json.dumps({"type": "dropped", "count": count})


class ClientQueue:
    """What waits for one browser: bounded, never blocking the one who offers."""

    def __init__(
        self,
        *,
        max_frames: int = MAX_QUEUED_FRAMES,
        max_bytes: int = MAX_QUEUED_BYTES,
        feed_filter: FeedFilter | None = None,
    ) -> None:
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.filter = feed_filter or FeedFilter()
        self._chargers: dict[str, str] = {}
        self._frames: deque[str] = deque()
        self._bytes = 0
        self._dropped = 0
        #: Frames dropped for this browser since it connected.
        self.dropped_total = 0
        self._ready = asyncio.Event()

    def offer_charger(self, charge_point_id: str, message: str) -> None:
        """The newest state of a charger replaces any that has not been sent yet."""
        self._chargers.pop(charge_point_id, None)
        self._chargers[charge_point_id] = message
        self._ready.set()

    def offer(self, item: FeedItem) -> None:
        """Queue a frame or event (the caller asked :attr:`filter` already, for frames)."""
        self._frames.append(item.text)
        self._bytes += len(item.text)
        while len(self._frames) > self.max_frames or (
            self._bytes > self.max_bytes and len(self._frames) > 1
        ):
            self._bytes -= len(self._frames.popleft())
            self._dropped += 1
            self.dropped_total += 1
        self._ready.set()

    def take(self) -> list[str]:
        """Everything waiting, in sending order: charger states, a drop notice, frames."""
        batch = list(self._chargers.values())
        self._chargers.clear()
        if self._dropped:
            batch.append(dropped_message(self._dropped))
            self._dropped = 0
        batch.extend(self._frames)
        self._frames.clear()
        self._bytes = 0
        self._ready.clear()
        return batch

    async def next_batch(self) -> list[str]:
        """Wait until something is waiting, then take it all."""
        await self._ready.wait()
        return self.take()

    @property
    def pending(self) -> int:
        return len(self._chargers) + len(self._frames)
