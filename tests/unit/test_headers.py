"""Frame times and ids: the RFC 3339 form, uniqueness, order."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from oye_shared import headers as h

pytestmark = pytest.mark.unit


def test_now_is_rfc3339_with_microseconds_and_close_to_the_clock() -> None:
    before = datetime.now(UTC)
    text = h.now_rfc3339()
    after = datetime.now(UTC)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", text)
    assert before <= datetime.fromisoformat(text) <= after
    assert len(text) == len(h.rfc3339(before))


def test_frame_ids_are_unique_32_hex_and_in_time_order() -> None:
    day_before = datetime.now(UTC).strftime("%Y%m%d")
    ids = [h.new_frame_id() for _ in range(100_000)]
    day_after = datetime.now(UTC).strftime("%Y%m%d")
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and re.fullmatch(r"[0-9a-f]{32}", i) for i in ids[:100])
    assert [i[:16] for i in ids] == sorted(i[:16] for i in ids)
    assert ids[0][:8] in (day_before, day_after)


def test_a_frame_stamp_is_a_new_id_and_now_read_from_the_same_clock() -> None:
    before = datetime.now(UTC)
    stamps = [h.new_frame_stamp() for _ in range(10_000)]
    after = datetime.now(UTC)
    ids = [frame_id for frame_id, _ in stamps]
    assert len(set(ids)) == len(ids)
    assert len(set(ids) | {h.new_frame_id() for _ in range(100)}) == len(ids) + 100
    for frame_id, time in stamps[:: len(stamps) // 10]:
        assert re.fullmatch(r"[0-9a-f]{32}", frame_id)
        assert before <= datetime.fromisoformat(time) <= after
        # The id's time prefix is that time to the hundredth of a second.
        digits = time[0:4] + time[5:7] + time[8:10] + time[11:13] + time[14:16] + time[17:19]
        assert frame_id[:16] == digits + time[20:22]
