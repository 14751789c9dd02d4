"""The per-charger CALL rate: bursts, refill, and when a flood means disconnection."""

from __future__ import annotations

import pytest

from oye_relay.rate import CallRate

pytestmark = pytest.mark.unit


def test_a_burst_of_twice_the_rate_passes_then_calls_are_refused() -> None:
    limit = CallRate(rate=10, disconnect_after=5)
    assert all(limit.allow(1.0) for _ in range(20))
    assert not limit.allow(1.0)


def test_tokens_come_back_at_the_rate() -> None:
    limit = CallRate(rate=10, disconnect_after=5)
    for _ in range(20):
        limit.allow(1.0)
    assert not limit.allow(1.0)
    assert limit.allow(1.1)  # 0.1 s at 10/s: one more
    assert not limit.allow(1.1)


def test_a_steady_charger_at_its_rate_is_never_refused() -> None:
    limit = CallRate(rate=10, disconnect_after=5)
    assert all(limit.allow(1.0 + n / 10) for n in range(1000))


def test_a_flood_persists_while_refusals_go_on_even_if_some_calls_pass() -> None:
    limit = CallRate(rate=10, disconnect_after=5)
    now = 1.0
    while limit.allow(now):
        pass
    assert limit.flooding_since == now
    # 1000 CALLs a second: a few pass as tokens come back, most are refused.
    passed = sum(limit.allow(now + n / 1000) for n in range(1, 4900))
    assert 40 <= passed <= 50
    assert not limit.persists(now + 4.9)
    while limit.allow(now + 5.0):
        pass
    assert limit.persists(now + 5.0)


def test_a_calm_second_ends_the_flood() -> None:
    limit = CallRate(rate=10, disconnect_after=5)
    while limit.allow(1.0):
        pass
    assert not limit.persists(2.5)  # nothing refused for 1.5 s
    assert limit.allow(2.5)
    for _ in range(100):
        limit.allow(2.5)
    assert limit.flooding_since == 2.5  # a new flood, counted from here
