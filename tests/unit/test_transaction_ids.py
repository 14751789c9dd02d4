"""Offline transaction ids: reserved blocks first, a clock-seeded fallback after."""

from __future__ import annotations

import pytest

from oye_relay.transaction_ids import FIRST, LAST, TransactionIds

pytestmark = pytest.mark.unit


def test_ids_come_from_the_reserved_blocks_in_order() -> None:
    """Two reserved blocks are used up in order, each id once."""
    ids = TransactionIds(block=3)
    ids._blocks.extend([range(FIRST, FIRST + 3), range(FIRST + 30, FIRST + 33)])
    assert [ids.next() for _ in range(6)] == [
        FIRST,
        FIRST + 1,
        FIRST + 2,
        FIRST + 30,
        FIRST + 31,
        FIRST + 32,
    ]


def test_without_a_reserved_block_ids_stay_in_the_reserved_range() -> None:
    """The fallback is unique within the process and inside the proxy's range."""
    ids = TransactionIds(block=3)
    issued = [ids.next() for _ in range(100)]
    assert len(set(issued)) == 100
    assert all(FIRST <= i <= LAST for i in issued)
