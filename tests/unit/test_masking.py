"""Id tags masked in what is published (OYE_MASK_ID_TAGS)."""

from __future__ import annotations

import json

import pytest

from oye_relay.masking import mask_tag, masked_frame
from oye_shared.frames import parse_frame

pytestmark = pytest.mark.unit


def masked(text: str) -> object:
    return json.loads(masked_frame(parse_frame(text), text))


def test_16_tags_are_masked_at_any_depth() -> None:
    assert masked('[2,"1","Authorize",{"idTag":"04A2B3C4D5"}]') == [
        2,
        "1",
        "Authorize",
        {"idTag": "****D5"},
    ]
    answer = masked('[3,"1",{"idTagInfo":{"status":"Accepted","parentIdTag":"GROUP-77"}}]')
    assert answer == [3, "1", {"idTagInfo": {"status": "Accepted", "parentIdTag": "****77"}}]


def test_201_tokens_are_masked_and_their_type_kept() -> None:
    text = (
        '[2,"1","TransactionEvent",{"eventType":"Started","idToken":'
        '{"idToken":"DEADBEEF","type":"ISO14443"},"groupIdToken":{"idToken":"G1","type":"Central"}}]'
    )
    payload = masked(text)[3]  # type: ignore[index]
    assert payload["idToken"] == {"idToken": "****EF", "type": "ISO14443"}
    assert payload["groupIdToken"] == {"idToken": "****", "type": "Central"}


def test_frames_without_tags_are_published_byte_for_byte() -> None:
    text = '[2, "1", "Heartbeat", {}]'
    assert masked_frame(parse_frame(text), text) is text
    error = '[4,"1","GenericError","idTag bad",{"idTag":"X"}]'
    assert masked_frame(parse_frame(error), error) is error


def test_short_tags_leave_nothing() -> None:
    assert mask_tag("1234") == "****"
