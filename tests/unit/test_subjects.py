"""The charge-point-id token codec and the subject names."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oye_shared.replay import txmap_key
from oye_shared.subjects import (
    Direction,
    Subjects,
    decode_token,
    encode_token,
    kv_key,
    kv_key_decode,
)

pytestmark = pytest.mark.unit

NASTY_IDS = ["CP.1", "CP*", "CP>", "CP 1", "100%", "Zürich-Ladesäule", "a.b*c>d e%f", "\u2003x"]


@pytest.mark.parametrize("charge_point_id", NASTY_IDS)
def test_nasty_ids_become_one_safe_token_and_come_back(charge_point_id: str) -> None:
    """Dots, wildcards, spaces, '%' and non-ASCII make one token that decodes to the id."""
    token = encode_token(charge_point_id)
    assert not any(ch in token for ch in ".*> \t\r\n")
    assert decode_token(token) == charge_point_id


def test_plain_ids_are_left_readable() -> None:
    """Ids made of letters, digits, '-', '_' and ':' are not escaped at all."""
    assert encode_token("CP-001_a:b") == "CP-001_a:b"


@given(st.text(min_size=1))
def test_any_id_round_trips_through_a_token(charge_point_id: str) -> None:
    """Whatever the id, the token has no NATS separators or wildcards and decodes back."""
    token = encode_token(charge_point_id)
    assert not set(".*>") & set(token)
    assert not any(ch.isspace() for ch in token)
    assert decode_token(token) == charge_point_id


@given(st.text(min_size=1))
def test_any_id_round_trips_through_a_kv_key(charge_point_id: str) -> None:
    """KV keys use only the characters NATS KV allows, and decode back."""
    key = kv_key(charge_point_id)
    assert all(ch.isalnum() or ch in "-_=" for ch in key)
    assert kv_key_decode(key) == charge_point_id


def test_subjects_put_the_encoded_id_in_one_token() -> None:
    """Frames, events and inject subjects carry the id as exactly one token."""
    subjects = Subjects("oye")
    assert subjects.frames("a.b", Direction.UPSTREAM) == "oye.frames.a%2Eb.UPSTREAM"
    assert subjects.events("a b", "connected") == "oye.events.a%20b.connected"
    assert subjects.inject("x>") == "oye.inject.x%3E"
    assert subjects.charge_point_of("oye.frames.a%2Eb.UPSTREAM") == "a.b"
    assert Subjects("site.oye").charge_point_of("site.oye.events.a%2A.connected") == "a*"


def test_a_secondarys_replay_queue_and_map_sit_one_token_below_the_primarys() -> None:
    """The primary's exact subject and key never name a secondary's, nor the reverse."""
    subjects = Subjects("oye")
    assert subjects.replay("a.b") == "oye.replay.a%2Eb"
    assert subjects.replay("a.b", "ha") == "oye.replay.a%2Eb.ha"
    assert subjects.replay("a.b", "*") == "oye.replay.a%2Eb.*"  # every secondary's queue
    assert txmap_key("CP 1") == kv_key("CP 1")
    assert txmap_key("CP 1", "ha") == kv_key("CP 1") + ".ha"
    assert "." not in kv_key("CP.1.ha")  # base64: no charger's key looks like a secondary's
