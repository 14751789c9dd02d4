"""The CALLRESULT payload is cut out of the frame as text, never re-serialized."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oye_api.ocpp_text import FrameTextError, result_payload_text

pytestmark = pytest.mark.unit

COMPOSITE = (
    '{"status":"Accepted","scheduleStart":"2023-12-15T10:00:00Z","connectorId":0,'
    '"chargingSchedule":{"duration":3600,"chargingRateUnit":"A",'
    '"chargingSchedulePeriod":[{"startPeriod":0,"limit":16.0}]}}'
)


def test_payload_is_returned_exactly_as_sent() -> None:
    """16.0 stays 16.0 and the keys keep their order."""
    assert result_payload_text(f'[3,"19223201",{COMPOSITE}]') == COMPOSITE


def test_whitespace_around_elements_is_skipped_but_kept_inside_the_payload() -> None:
    """JSON whitespace between the elements does not reach the payload text."""
    payload = '{ "status" :\t"Accepted",\n "limit": 16.0 }'
    frame = f' \n[ 3 ,\r\n "id-1" ,\t{payload}\n ] \n'
    assert result_payload_text(frame) == payload


def test_brackets_and_quotes_inside_strings_do_not_end_the_payload() -> None:
    """Brackets, escaped quotes and commas in strings are string content, not structure."""
    payload = r'{"a":"]]}","b":[["x]"],{"c":"\"]"}],"d":"\\"}'
    assert result_payload_text(f'[3,"x]y\\"z",{payload}]') == payload


def test_nested_payload_with_unicode_is_kept() -> None:
    """Escapes and non-ASCII characters are left exactly as they were."""
    payload = '{"name":"Zürich \\u00e9","nested":{"list":[1,2.50,{"deep":[]}]}}'
    assert result_payload_text(f'[3,"m",{payload}]') == payload


def test_empty_payload_object() -> None:
    """A CALLRESULT with ``{}`` gives ``{}``."""
    assert result_payload_text('[3,"m",{}]') == "{}"


@pytest.mark.parametrize(
    "frame",
    [
        "",
        "not json",
        "{}",
        '[2,"m","Heartbeat",{}]',
        '[4,"m","NotSupported","",{}]',
        '[3,"m"]',
        "[3,42,{}]",
        '[3,"m",[]]',
        '[3,"m",{}',
        '[3,"m",{}] trailing',
        '[3,"m",{},{}]',
        '[3.0,"m",{}]',
        '[true,"m",{}]',
        '[3,"m",{"a":1]',
    ],
)
def test_anything_but_a_callresult_is_refused(frame: str) -> None:
    """Other frames and broken text raise FrameTextError."""
    with pytest.raises(FrameTextError):
        result_payload_text(frame)


@given(st.text())
def test_arbitrary_text_raises_only_frame_text_error(text: str) -> None:
    """Whatever the text, the only error is FrameTextError."""
    with contextlib.suppress(FrameTextError):
        result_payload_text(text)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(
    payload=st.dictionaries(st.text(), _json, max_size=5),
    message_id=st.text(),
    indent=st.sampled_from([None, 0, 2]),
    ensure_ascii=st.booleans(),
)
def test_any_serialized_payload_comes_back_byte_for_byte(
    payload: dict[str, Any], message_id: str, indent: int | None, ensure_ascii: bool
) -> None:
    """However the charger serialized it, the payload text is found unchanged."""
    text = json.dumps(payload, indent=indent, ensure_ascii=ensure_ascii)
    frame = f"[3, {json.dumps(message_id)},\n{text} ]"
    assert result_payload_text(frame) == text
