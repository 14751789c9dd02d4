"""From a NATS message to a log row: frames, malformed frames, binary frames, events."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oye_logger.rows import (
    BASE64,
    UTF8,
    LogRow,
    RowMaker,
    decode_body,
    header_values,
    parse_time_us,
)
from oye_shared import headers as h
from oye_shared.logquery import EntryKind
from oye_shared.subjects import Direction, EventKind, Subjects

pytestmark = pytest.mark.unit

SUBJECTS = Subjects("oye")
T0 = "2025-06-01T12:00:00.123456Z"
T0_US = 1_748_779_200_123_456


def never() -> tuple[str, int]:
    raise AssertionError("the fallback must not be used when the headers say it all")


def frame_headers(**extra: str) -> dict[str, str]:
    headers = {
        h.DIRECTION: "UPSTREAM",
        h.CHARGE_POINT: "CP.1 ü",
        h.TIME: T0,
        h.FRAME_ID: "f-1",
        h.NATS_MSG_ID: "f-1",
        h.SUBPROTOCOL: "ocpp1.6",
        h.RELAY: "relay-a",
    }
    headers.update(extra)
    return headers


def make(subject: str, body: bytes, headers: dict[str, str] | None, **kw: object) -> LogRow:
    fallback = kw.pop("fallback", never)
    return RowMaker(str(kw.pop("prefix", "oye"))).make(
        subject,
        body,
        headers,
        fallback=fallback,  # type: ignore[arg-type]
    )


def test_a_call_becomes_a_row_with_every_header_fact() -> None:
    """Frame id, charger, direction, time, type, id, action, subprotocol and relay are kept."""
    body = b'[2,"m1","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]'
    headers = frame_headers(
        **{h.MESSAGE_TYPE: "CALL", h.MESSAGE_ID: "m1", h.ACTION: "BootNotification"}
    )
    row = make(SUBJECTS.frames("CP.1 ü", Direction.UPSTREAM), body, headers)
    assert row == LogRow(
        frame_id="f-1",
        kind=EntryKind.FRAME,
        charge_point_id="CP.1 ü",
        direction="UPSTREAM",
        time_us=T0_US,
        message_type="CALL",
        message_id="m1",
        action="BootNotification",
        error=None,
        subprotocol="ocpp1.6",
        relay="relay-a",
        is_binary=False,
        encoding=UTF8,
        raw=body.decode(),
        is_json=True,
    )


def test_a_reply_keeps_the_action_of_the_call_it_answers() -> None:
    """A CALLRESULT has no action of its own; the relay's Oye-Action names the call's."""
    headers = frame_headers(
        **{
            h.DIRECTION: "DOWNSTREAM",
            h.MESSAGE_TYPE: "CALLRESULT",
            h.MESSAGE_ID: "m1",
            h.ACTION: "Heartbeat",
        }
    )
    row = make(SUBJECTS.frames("CP.1 ü", Direction.DOWNSTREAM), b'[3,"m1",{}]', headers)
    assert (row.direction, row.message_type, row.action) == (
        "DOWNSTREAM",
        "CALLRESULT",
        "Heartbeat",
    )


def test_a_malformed_frame_is_kept_byte_for_byte_with_its_reason() -> None:
    """Text that is not JSON is stored as it came, typed MALFORMED, without a payload."""
    body = b'[2,"m1","Heartbeat",{'
    headers = frame_headers(**{h.MESSAGE_TYPE: h.MALFORMED, h.ERROR: "not-json"})
    row = make(SUBJECTS.frames("CP.1 ü", Direction.UPSTREAM), body, headers)
    assert (row.message_type, row.error, row.raw, row.is_json) == (
        "MALFORMED",
        "not-json",
        body.decode(),
        False,
    )
    assert row.message_id is None
    assert row.action is None


def test_a_malformed_frame_that_is_still_json_keeps_a_payload() -> None:
    """A JSON object is no OCPP frame, but it is JSON: the payload is there to read."""
    headers = frame_headers(
        **{h.MESSAGE_TYPE: h.MALFORMED, h.ERROR: "not-array", h.MESSAGE_ID: "x"}
    )
    row = make(SUBJECTS.frames("CP1", Direction.UPSTREAM), b'{"hello": 1}', headers)
    assert row.is_json
    assert row.error == "not-array"
    assert row.message_id == "x"


@pytest.mark.parametrize("body", [b"[NaN]", b"[Infinity]", b"[1, 2", b"", b"\xef\xbb\xbf[]"])
def test_text_that_is_not_strict_json_has_no_payload(body: bytes) -> None:
    """NaN and Infinity (which Python would accept) or a BOM are not JSON a store can read."""
    row = make(SUBJECTS.frames("CP1", Direction.UPSTREAM), body, frame_headers())
    assert not row.is_json


def test_binary_bytes_that_are_not_utf8_are_kept_as_base64() -> None:
    """A binary WebSocket message of arbitrary bytes survives exactly."""
    body = b"\xff\x00\xfe[2]"
    headers = frame_headers(**{h.MESSAGE_TYPE: h.MALFORMED, h.ERROR: "not-text", h.BINARY: "1"})
    row = make(SUBJECTS.frames("CP1", Direction.UPSTREAM), body, headers)
    assert (row.encoding, row.is_binary, row.is_json) == (BASE64, True, False)
    assert decode_body(row.raw, row.encoding) == body


def test_text_with_a_nul_character_is_kept_as_base64() -> None:
    """PostgreSQL text cannot hold NUL, so such a frame is stored encoded, not refused."""
    body = b'[2,"m1","Heartbeat",{}]\x00'
    row = make(SUBJECTS.frames("CP1", Direction.UPSTREAM), body, frame_headers())
    assert row.encoding == BASE64
    assert decode_body(row.raw, row.encoding) == body


def test_a_binary_frame_that_is_utf8_json_is_stored_as_text() -> None:
    """``Oye-Binary`` is remembered; a UTF-8 JSON body stays readable text."""
    headers = frame_headers(
        **{h.MESSAGE_TYPE: "CALL", h.MESSAGE_ID: "m", h.ACTION: "Heartbeat", h.BINARY: "1"}
    )
    row = make(SUBJECTS.frames("CP1", Direction.UPSTREAM), b'[2,"m","Heartbeat",{}]', headers)
    assert (row.encoding, row.is_binary, row.is_json) == (UTF8, True, True)


def test_an_event_is_a_row_of_kind_event_named_by_its_action() -> None:
    """Connection events are stored too: no direction, the event kind as the action."""
    body = json.dumps({"event": "connected", "chargePointId": "CP1"}).encode()
    headers = {h.CHARGE_POINT: "CP1", h.TIME: T0, h.FRAME_ID: "e-1", h.RELAY: "relay-a"}
    row = make(SUBJECTS.events("CP1", EventKind.CONNECTED), body, headers)
    assert (row.kind, row.direction, row.action, row.message_type) == (
        EntryKind.EVENT,
        None,
        "connected",
        None,
    )
    assert (row.frame_id, row.time_us, row.is_json, row.relay) == ("e-1", T0_US, True, "relay-a")


def test_without_headers_the_subject_and_the_stream_say_what_they_can() -> None:
    """Charger and direction come from the subject; id and time from the fallback."""
    subject = SUBJECTS.frames("RDAM.12 3*", Direction.DOWNSTREAM)
    row = make(subject, b'[3,"m1",{}]', None, fallback=lambda: ("OYE_TRAFFIC:42", 7))
    assert (row.charge_point_id, row.direction, row.frame_id, row.time_us) == (
        "RDAM.12 3*",
        "DOWNSTREAM",
        "OYE_TRAFFIC:42",
        7,
    )
    assert row.is_json
    assert row.message_type is None


def test_a_prefix_of_several_tokens_is_skipped() -> None:
    """``OYE_SUBJECT_PREFIX=site.a`` moves every token one place to the right."""
    subject = Subjects("site.a").frames("CP9", Direction.UPSTREAM)
    row = make(subject, b"[]", None, prefix="site.a", fallback=lambda: ("id", 1))
    assert (row.charge_point_id, row.direction, row.kind) == ("CP9", "UPSTREAM", EntryKind.FRAME)


def test_an_unreadable_time_falls_back_to_the_stream_time() -> None:
    """A bad ``Oye-Time`` does not lose the frame: the message's stream time is used."""
    headers = frame_headers(**{h.TIME: "yesterday"})
    row = make(
        SUBJECTS.frames("CP1", Direction.UPSTREAM), b"[]", headers, fallback=lambda: ("x", 99)
    )
    assert (row.time_us, row.frame_id) == (99, "f-1")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (T0, T0_US),
        ("2025-06-01T14:00:00.123456+02:00", T0_US),
        ("2025-06-01T12:00:00.123456", T0_US),  # no offset: UTC
        ("1970-01-01T00:00:00Z", 0),
        ("not a time", None),
        ("", None),
        (None, None),
    ],
)
def test_times_are_read_as_utc_microseconds(text: str | None, expected: int | None) -> None:
    """RFC 3339 with any offset gives the same instant; garbage gives None."""
    assert parse_time_us(text) == expected


@given(
    body=st.binary(max_size=200),
    values=st.lists(st.text(max_size=20), min_size=9, max_size=9),
    token=st.text(min_size=1, max_size=10),
)
def test_any_message_becomes_a_row_without_raising(
    body: bytes, values: list[str], token: str
) -> None:
    """Arbitrary bodies and header values never stop the logger: every message is a row."""
    names = [h.DIRECTION, h.CHARGE_POINT, h.TIME, h.FRAME_ID, h.MESSAGE_TYPE]
    names += [h.MESSAGE_ID, h.ACTION, h.ERROR, h.BINARY]
    headers = dict(zip(names, values, strict=True))
    subject = f"oye.frames.{token}.UPSTREAM"
    row = make(subject, body, headers, fallback=lambda: ("fallback", 1))
    assert row.frame_id
    assert isinstance(row.time_us, int)
    assert decode_body(row.raw, row.encoding) == body


def test_a_batch_becomes_the_rows_its_messages_make_one_by_one() -> None:
    """``rows`` keeps the order, and hands the fallback the message that needs it."""
    maker = RowMaker("oye")
    call = frame_headers(**{h.MESSAGE_TYPE: "CALL", h.MESSAGE_ID: "m1", h.ACTION: "Heartbeat"})
    messages = [
        (SUBJECTS.frames("CP1", Direction.UPSTREAM), b"r1", b'[2,"m1","Heartbeat",{}]', call),
        (SUBJECTS.frames("CP2", Direction.DOWNSTREAM), b"r2", b'[3,"m1",{}]', None),
        (SUBJECTS.events("CP1", EventKind.CONNECTED), b"r3", b"{}", frame_headers()),
    ]
    asked: list[bytes] = []

    def fallback(message: tuple[str, bytes, bytes, tuple[str | None, ...]]) -> tuple[str, int]:
        asked.append(message[1])
        return "from-stream", 5

    rows = maker.rows([(s, r, b, header_values(hs)) for s, r, b, hs in messages], fallback)
    assert rows == [
        maker.make(s, b, hs, fallback=lambda: ("from-stream", 5)) for s, _, b, hs in messages
    ]
    assert asked == [b"r2"]
    assert [row.kind for row in rows] == [EntryKind.FRAME, EntryKind.FRAME, EntryKind.EVENT]
