"""A replay queue's bookkeeping without NATS: what a new session finds, when a replay starts."""

from __future__ import annotations

from typing import cast

import pytest

from oye_relay.offline_queue import ChargerQueue
from oye_relay.replayer import Replayer
from oye_relay.traffic import TrafficTap
from oye_relay.transaction_map import TransactionMap
from oye_shared.replay import Backlog

pytestmark = pytest.mark.unit


def replayer_of(queue: ChargerQueue) -> Replayer:
    return Replayer(
        charge_point_id="CP",
        queue=queue,
        transaction_map=TransactionMap(),
        tap=cast(TrafficTap, None),  # never published to here
        version=lambda: "1.6",
        call_timeout=1.0,
        attempts=1,
        backend=queue.backend,
    )


def test_a_backlog_found_later_counts_with_its_oldest_message() -> None:
    """A secondary's link reads its backlog after the session began."""
    queue = ChargerQueue("CP", lambda: None, backend="ha")
    assert (queue.depth, queue.oldest) == (0, None)
    queue.found(Backlog(3, "2026-01-01T00:00:00Z"))
    assert queue.depth == 3
    assert queue.oldest == 1767225600.0
    queue.found(Backlog())
    assert queue.depth == 3


async def test_a_replay_starts_for_an_append_under_way_even_while_the_queue_is_empty() -> None:
    """An append that waits for the charger's transaction id must not be left behind."""
    queue = ChargerQueue("CP", lambda: None, backend="ha")
    replayer = replayer_of(queue)
    replayer.connected()
    assert not replayer.active
    async with queue.appending():
        replayer.connected()
        assert replayer.active
        assert not queue.settled
    assert queue.settled


async def test_without_nats_kept_messages_wait_in_memory_in_order() -> None:
    """They count in the backlog, and the replay cannot read them before NATS is there."""
    queue = ChargerQueue("CP", lambda: None, backend="ha")
    await queue.append(
        '[2,"1","StatusNotification",{}]', action="StatusNotification", offline_transaction_id=None
    )
    await queue.append(
        '[2,"2","StartTransaction",{}]', action="StartTransaction", offline_transaction_id=7
    )
    assert queue.depth == 2
    assert queue.oldest is not None
    replayer = replayer_of(queue)
    replayer.connected()
    assert replayer.active
    with pytest.raises(ConnectionError):
        await queue.first()
