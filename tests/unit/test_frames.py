"""OCPP-J frame parsing: what it reads, and that it raises nothing but FrameError."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oye_shared.frames import FRAME_ERROR_REASONS, FrameError, MessageType, parse_frame

pytestmark = pytest.mark.unit


def test_a_call_gives_type_id_action_and_payload() -> None:
    """A CALL is read as CALL with its id, action and payload."""
    frame = parse_frame('[2,"19223201","Heartbeat",{}]')
    assert frame.message_type is MessageType.CALL
    assert (frame.message_id, frame.action, frame.payload) == ("19223201", "Heartbeat", {})


def test_a_callresult_and_a_callerror_are_read() -> None:
    """CALLRESULT carries a payload; CALLERROR its code, description and details."""
    result = parse_frame(b'[3, "1", {"currentTime": "2025-06-01T12:00:00Z"}]')
    assert result.message_type is MessageType.CALLRESULT
    assert result.payload == {"currentTime": "2025-06-01T12:00:00Z"}
    error = parse_frame('[4,"2","NotSupported","nope",{}]')
    assert (error.error_code, error.error_description, error.error_details) == (
        "NotSupported",
        "nope",
        {},
    )


def test_ocpp21_send_and_callresulterror_are_known_types() -> None:
    """Types 5 and 6 of OCPP 2.1 parse."""
    assert parse_frame('[6,"a","NotifyPeriodicEventStream",{}]').message_type is MessageType.SEND
    assert parse_frame('[5,"a","InternalError","",{}]').message_type is MessageType.CALLRESULTERROR


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (b"\xff\xfe", "not-text"),
        ("{not json", "not-json"),
        ('{"a": 1}', "not-array"),
        ("[]", "not-array"),
        ('[9,"1",{}]', "bad-type"),
        ('[true,"1","A",{}]', "bad-type"),
        ('[2,1,"Heartbeat",{}]', "bad-id"),
        ('[2,"' + "x" * 37 + '","Heartbeat",{}]', "bad-id"),
        ('[2,"1","Heartbeat"]', "bad-shape"),
        ('[2,"1","Heartbeat",[]]', "bad-shape"),
        ('[3,"1","x"]', "bad-shape"),
    ],
)
def test_malformed_frames_raise_frame_error_with_a_documented_reason(
    text: str | bytes, reason: str
) -> None:
    """Each kind of malformation has its own documented reason."""
    with pytest.raises(FrameError) as caught:
        parse_frame(text)
    assert caught.value.reason == reason
    assert reason in FRAME_ERROR_REASONS


def test_the_id_is_kept_when_only_the_shape_is_wrong() -> None:
    """A readable id survives in the error, so a CALLERROR can name it."""
    with pytest.raises(FrameError) as caught:
        parse_frame('[2,"abc","Heartbeat"]')
    assert caught.value.message_id == "abc"


def reason_of(data: str | bytes) -> str | None:
    """Parse; return None on success, else the FrameError's reason (anything else raises)."""
    try:
        parse_frame(data)
    except FrameError as error:
        return error.reason
    return None


ALLOWED = (None, *FRAME_ERROR_REASONS)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(st.one_of(st.text(), st.binary()))
def test_arbitrary_text_and_bytes_raise_only_frame_error(data: str | bytes) -> None:
    """Garbage never raises anything but FrameError."""
    assert reason_of(data) in ALLOWED


@given(st.lists(json_values, max_size=6))
def test_arbitrary_json_arrays_raise_only_frame_error(elements: list[object]) -> None:
    """Arrays of any shape never raise anything but FrameError."""
    assert reason_of(json.dumps(elements)) in ALLOWED


@given(st.sampled_from([2, 3, 4, 5, 6]), st.text(min_size=1, max_size=36), json_values)
def test_near_valid_frames_raise_only_frame_error(kind: int, message_id: str, x: object) -> None:
    """Frames with a valid type and id but any other content parse or raise FrameError."""
    for elements in (
        [kind, message_id, x],
        [kind, message_id, "A", x],
        [kind, message_id, "E", "d", x],
    ):
        assert reason_of(json.dumps(elements)) in ALLOWED
