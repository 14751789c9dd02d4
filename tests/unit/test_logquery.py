"""The log query contract: validation with located problems, cursors, pages that fit."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Sequence

import pytest

from oye_logger.query import page_of, rfc3339_us
from oye_logger.rows import LogRow
from oye_shared.logquery import (
    LogPage,
    LogQuery,
    LogQueryError,
    decode_cursor,
    encode_cursor,
    parse_reply,
    parse_time,
    validate_query,
)
from oye_shared.subjects import Direction

pytestmark = pytest.mark.unit


def problems(data: object) -> dict[str, str]:
    error = validate_query(data)
    assert isinstance(error, LogQueryError), error
    return {p.path: p.message for p in error.problems}


def test_an_empty_query_asks_for_the_newest_hundred() -> None:
    """Every filter is optional; the page size defaults to 100."""
    query = validate_query({})
    assert isinstance(query, LogQuery)
    assert (query.limit, query.cursor, query.since, query.direction) == (100, None, None, None)


def test_query_parameters_arrive_as_text_and_are_typed() -> None:
    """What an HTTP query string holds (strings) validates the same as JSON."""
    query = validate_query(
        {
            "chargePointId": "CP 1",
            "direction": "UPSTREAM",
            "action": "Heartbeat",
            "messageId": "m1",
            "since": "1700000000.5",
            "until": "2025-06-01T12:00:00Z",
            "limit": "50",
        }
    )
    assert isinstance(query, LogQuery)
    assert query.direction is Direction.UPSTREAM
    assert (query.since_us, query.until_us, query.limit) == (
        1_700_000_000_500_000,
        1_748_779_200_000_000,
        50,
    )


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"limit": 0}, "$.limit"),
        ({"limit": 1001}, "$.limit"),
        ({"limit": "many"}, "$.limit"),
        ({"direction": "SIDEWAYS"}, "$.direction"),
        ({"kind": "rumour"}, "$.kind"),
        ({"since": "yesterday"}, "$.since"),
        ({"until": "-5"}, "$.until"),
        ({"since": 20, "until": 10}, "$.until"),
        ({"cursor": "not-a-cursor"}, "$.cursor"),
        ({"chargePointId": ""}, "$.chargePointId"),
        ({"colour": "red"}, "$.colour"),
    ],
)
def test_each_bad_parameter_is_named_by_its_path(data: dict[str, object], path: str) -> None:
    """A bad value gets a problem at its JSON path with a message a person can act on."""
    found = problems(data)
    assert path in found, found
    assert found[path]


def test_every_problem_is_reported_at_once() -> None:
    """Two bad parameters give two problems, not the first one only."""
    assert set(problems({"limit": -1, "direction": "UP"})) == {"$.limit", "$.direction"}


def test_a_body_that_is_not_json_is_an_invalid_query() -> None:
    """Bytes that are not a JSON object give the same error shape."""
    error = validate_query(b"\xff not json")
    assert isinstance(error, LogQueryError)
    assert error.model_dump(by_alias=True)["code"] == "invalid"


def test_the_error_shape_is_fixed() -> None:
    """``{"error", "code", "problems": [{"path", "message"}]}``, error first."""
    error = validate_query({"limit": 0})
    assert isinstance(error, LogQueryError)
    encoded = error.model_dump_json(by_alias=True).encode()
    assert encoded.startswith(b'{"error"')
    body = json.loads(encoded)
    assert set(body) == {"error", "code", "problems"}
    assert set(body["problems"][0]) == {"path", "message"}
    assert isinstance(parse_reply(encoded), LogQueryError)


def test_a_cursor_round_trips_and_stays_opaque() -> None:
    """A cursor is URL-safe text that gives back the time and id it was made from."""
    cursor = encode_cursor(1_700_000_000_123_456, 42)
    assert cursor.replace("-", "").replace("_", "").isalnum()
    assert decode_cursor(cursor) == (1_700_000_000_123_456, 42)
    with pytest.raises(ValueError, match="cursor"):
        decode_cursor(encode_cursor(1, 2)[:-3] + "!!!")
    with pytest.raises(ValueError, match="cursor"):
        decode_cursor(encode_cursor(10**30, 2))  # beyond any database integer


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(1700000000, 1700000000.0), ("1700000000.25", 1700000000.25), ("1970-01-01T00:00:10Z", 10.0)],
)
def test_times_are_unix_seconds_or_rfc3339(value: object, seconds: float) -> None:
    """Both spellings of a time give the same Unix seconds."""
    assert parse_time(value) == seconds


class FakeStore:
    """Rows in memory, newest first, as a store would return them."""

    def __init__(self, rows: Sequence[LogRow]) -> None:
        self.rows = sorted(rows, key=lambda r: (r.time_us, r.id or 0), reverse=True)

    async def query(
        self, query: LogQuery, *, limit: int, max_raw_chars: int
    ) -> AsyncGenerator[LogRow, None]:
        after = query.after
        count = 0
        for row in self.rows:
            if after is not None and (row.time_us, row.id or 0) >= after:
                continue
            if count == limit:
                return
            count += 1
            cut = len(row.raw) > max_raw_chars
            yield row._replace(
                raw=row.raw[:max_raw_chars], truncated=cut, is_json=row.is_json and not cut
            )


def row(n: int, raw: str) -> LogRow:
    return LogRow(
        frame_id=f"f{n}",
        kind="frame",  # type: ignore[arg-type]
        charge_point_id="CP1",
        direction="UPSTREAM",
        time_us=1_000_000 * n,
        message_type="CALL",
        message_id=f"m{n}",
        action="DataTransfer",
        error=None,
        subprotocol="ocpp1.6",
        relay="r",
        is_binary=False,
        encoding="utf-8",
        raw=raw,
        is_json=True,
        id=n,
    )


async def test_a_page_holds_the_original_and_the_richer_fields() -> None:
    """id, charge_point_id, direction, payload, timestamp; then frameId, time, raw..."""
    raw = '[2,"m1","DataTransfer",{"vendorId":"x"}]'
    page = LogPage.model_validate_json(
        await page_of(FakeStore([row(1, raw)]), LogQuery(), max_bytes=1_000_000)  # type: ignore[arg-type]
    )
    entry = json.loads(page.model_dump_json(by_alias=True))["entries"][0]
    assert entry["id"] == 1
    assert entry["charge_point_id"] == "CP1"
    assert entry["payload"] == [2, "m1", "DataTransfer", {"vendorId": "x"}]
    assert entry["timestamp"] == 1.0
    assert entry["time"] == "1970-01-01T00:00:01.000000Z" == rfc3339_us(1_000_000)
    assert (entry["frameId"], entry["raw"], entry["messageId"]) == ("f1", raw, "m1")
    assert page.next_cursor is None


async def test_a_page_stops_before_the_nats_payload_limit_and_says_where_to_go_on() -> None:
    """Big frames: fewer entries than asked, each whole, and a cursor to the rest."""
    big = json.dumps([2, "m", "DataTransfer", {"data": "x" * 30_000}])
    store = FakeStore([row(n, big) for n in range(1, 11)])
    encoded = await page_of(store, LogQuery(limit=10), max_bytes=100_000)  # type: ignore[arg-type]
    assert len(encoded) <= 100_000
    page = LogPage.model_validate_json(encoded)
    assert 0 < len(page.entries) < 10
    assert all(not e.truncated and e.raw == big for e in page.entries)
    assert page.next_cursor is not None
    rest = LogPage.model_validate_json(
        await page_of(store, LogQuery(limit=10, cursor=page.next_cursor), max_bytes=100_000)  # type: ignore[arg-type]
    )
    assert rest.entries[0].id == page.entries[-1].id - 1


async def test_one_frame_too_big_for_a_page_is_cut_and_marked() -> None:
    """A single oversized frame still comes back, cut to fit, with ``truncated``."""
    huge = json.dumps([2, "m", "DataTransfer", {"data": "é\n" * 80_000}])
    encoded = await page_of(FakeStore([row(1, huge)]), LogQuery(), max_bytes=50_000)  # type: ignore[arg-type]
    assert len(encoded) <= 50_000
    (entry,) = LogPage.model_validate_json(encoded).entries
    assert entry.truncated
    assert entry.payload is None
    assert 0 < len(entry.raw) < len(huge)
    assert huge.startswith(entry.raw)
