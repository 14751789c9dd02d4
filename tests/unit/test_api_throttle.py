"""The sliding window that throttles failed logins."""

from __future__ import annotations

import pytest

from oye_api.throttle import recent, retry_after

pytestmark = pytest.mark.unit


def test_failures_older_than_the_window_are_forgotten() -> None:
    """Only failures within the last window count, oldest first."""
    assert recent([130.0, 10.0, 100.0, 71.0], now=130.0, window=60.0) == [71.0, 100.0, 130.0]


def test_fewer_failures_than_the_limit_are_not_throttled() -> None:
    """Four failures in a minute with a limit of five: no wait."""
    assert retry_after([1.0, 2.0, 3.0, 4.0], 5.0, limit=5, window=60.0) is None


def test_reaching_the_limit_waits_until_the_oldest_failure_leaves_the_window() -> None:
    """Five failures at 0..4 s: throttled until 60 s, when only four remain."""
    failures = [0.0, 1.0, 2.0, 3.0, 4.0]
    assert retry_after(failures, 4.5, limit=5, window=60.0) == 56
    assert retry_after(failures, 59.5, limit=5, window=60.0) == 1
    assert retry_after(failures, 60.0, limit=5, window=60.0) is None


def test_retry_after_is_at_least_one_second() -> None:
    """A wait just under a second is announced as 1 s, never 0."""
    assert retry_after([0.0] * 5, 59.99, limit=5, window=60.0) == 1


def test_failures_stamped_ahead_by_another_hosts_clock_still_count() -> None:
    """A failure from an instance whose clock runs ahead is not dropped."""
    assert recent([102.0], now=100.0, window=60.0) == [102.0]
