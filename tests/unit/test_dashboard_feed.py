"""What waits for one browser of the live feed: bounded, newest kept, states coalesced."""

from __future__ import annotations

import json

import pytest

from oye_api.dashboard.feed import (
    MAX_LIVE_FRAME_CHARS,
    ClientQueue,
    FeedFilter,
    FeedItem,
    event_item,
    frame_item,
)
from oye_shared import headers as h

pytestmark = pytest.mark.unit

HEADERS = {
    h.DIRECTION: "UPSTREAM",
    h.TIME: "2025-06-01T12:00:00.250000Z",
    h.FRAME_ID: "f1",
    h.MESSAGE_TYPE: "CALL",
    h.MESSAGE_ID: "42",
    h.ACTION: "Heartbeat",
}


def item(n: int, size: int = 10) -> FeedItem:
    return FeedItem("CP", "UPSTREAM", "Heartbeat", f"{n:0{size}d}")


def test_a_frame_message_carries_what_the_traffic_view_shows() -> None:
    """Direction, time (also as Unix seconds), ids, action and the exact text."""
    message = json.loads(frame_item("CP 1", HEADERS, b'[2,"42","Heartbeat",{}]').text)
    assert message == {
        "type": "frame",
        "cp": "CP 1",
        "direction": "UPSTREAM",
        "time": "2025-06-01T12:00:00.250000Z",
        "ts": 1748779200.25,
        "frameId": "f1",
        "messageType": "CALL",
        "messageId": "42",
        "action": "Heartbeat",
        "error": None,
        "binary": False,
        "encoding": "utf-8",
        "raw": '[2,"42","Heartbeat",{}]',
        "truncated": False,
    }


def test_a_huge_frame_is_cut_and_bytes_that_are_not_text_are_shown_as_hex() -> None:
    """The live view stays small; the log keeps the whole frame."""
    long = json.loads(frame_item("CP", HEADERS, b"x" * (MAX_LIVE_FRAME_CHARS + 5)).text)
    assert long["truncated"] is True
    assert len(long["raw"]) == MAX_LIVE_FRAME_CHARS
    binary = json.loads(frame_item("CP", {h.BINARY: "1"}, b"\xff\x00").text)
    assert (binary["binary"], binary["encoding"], binary["raw"]) == (True, "hex", "ff00")


def test_an_event_message_has_its_kind_as_action() -> None:
    """So the action filter and the log's action column agree for events."""
    event = event_item("CP", "connected", {h.TIME: HEADERS[h.TIME]}, b'{"event":"connected"}')
    assert event.action == "connected"
    assert event.direction is None
    assert json.loads(event.text)["kind"] == "connected"


@pytest.mark.parametrize(
    ("feed_filter", "wanted"),
    [
        (FeedFilter(), True),
        (FeedFilter(charge_point_id="CP"), True),
        (FeedFilter(charge_point_id="other"), False),
        (FeedFilter(direction="UPSTREAM", action="Heartbeat"), True),
        (FeedFilter(direction="DOWNSTREAM"), False),
        (FeedFilter(action="BootNotification"), False),
    ],
)
def test_a_filter_matches_charger_direction_and_action(
    feed_filter: FeedFilter, wanted: bool
) -> None:
    """None matches anything; the given ones must all match."""
    assert feed_filter.matches(item(1)) is wanted


def test_a_filter_from_the_browser_ignores_what_is_not_text() -> None:
    """Empty strings and other types mean "any"."""
    assert FeedFilter.from_message(
        {"chargePointId": "", "direction": 3, "action": "Heartbeat"}
    ) == FeedFilter(action="Heartbeat")


def test_a_queue_that_is_not_read_keeps_the_newest_frames_and_counts_the_rest() -> None:
    """Past the count bound the oldest go; the next batch says how many, first."""
    queue = ClientQueue(max_frames=3)
    for n in range(5):
        queue.offer(item(n))
    assert queue.pending == 3
    batch = queue.take()
    assert json.loads(batch[0]) == {"type": "dropped", "count": 2}
    assert batch[1:] == ["0000000002", "0000000003", "0000000004"]
    assert queue.take() == []
    assert queue.dropped_total == 2


def test_a_queue_is_bounded_by_bytes_too() -> None:
    """Large frames are dropped by total size, the newest always kept."""
    queue = ClientQueue(max_bytes=250)
    for n in range(10):
        queue.offer(item(n, size=100))
    kept = queue.take()[1:]
    assert kept == [f"{8:0100d}", f"{9:0100d}"]
    queue.offer(item(1, size=1000))  # alone over the bound: still sent
    assert queue.take() == [f"{1:01000d}"]


def test_charger_states_are_coalesced_and_come_first() -> None:
    """Only the newest state of a charger waits; states are never dropped."""
    queue = ClientQueue(max_frames=1)
    queue.offer(item(1))
    queue.offer_charger("A", "A1")
    queue.offer_charger("B", "B1")
    queue.offer_charger("A", "A2")
    queue.offer(item(2))
    assert queue.take() == ["B1", "A2", '{"type": "dropped", "count": 1}', "0000000002"]


async def test_next_batch_waits_for_something() -> None:
    """A reader blocks until a frame or state is offered."""
    queue = ClientQueue()
    queue.offer_charger("A", "A1")
    assert await queue.next_batch() == ["A1"]
    assert not queue.pending
