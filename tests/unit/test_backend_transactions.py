"""A secondary's 1.6 transaction ids: both answers to a StartTransaction make one pair."""

from __future__ import annotations

import pytest

from oye_relay.backend_transactions import STARTS, BackendTransactions
from oye_shared.frames import parse_frame

pytestmark = pytest.mark.unit


def answer(message_id: str, transaction_id: int) -> str:
    info = '"idTagInfo":{"status":"Accepted"}'
    return f'[3,"{message_id}",{{"transactionId":{transaction_id},{info}}}]'


def test_the_pair_is_learned_once_both_answers_are_in_whichever_comes_first() -> None:
    """The charger's id (the primary's answer) maps to the backend's own."""
    ids = BackendTransactions()
    ids.started("s1")
    assert ids.backend_answered(parse_frame(answer("s1", 900))) is None
    assert ids.charger_answered(parse_frame(answer("s1", 100))) == (100, 900)
    assert ids.changed
    assert ids.map.csms_id(100) == 900
    assert ids.charger_answered(parse_frame(answer("s1", 100))) is None  # once
    start = ids.start("s1")
    assert start is not None
    assert start.charger_answered.is_set()
    assert start.backend_answered.is_set()


def test_equal_ids_and_unknown_calls_map_nothing() -> None:
    ids = BackendTransactions()
    ids.started("s1")
    ids.charger_answered(parse_frame(answer("s1", 7)))
    assert ids.backend_answered(parse_frame(answer("s1", 7))) is None
    assert ids.charger_answered(parse_frame(answer("other", 8))) is None
    assert not ids.map
    assert not ids.changed


def test_a_call_error_releases_the_waiter_without_an_id() -> None:
    ids = BackendTransactions()
    ids.started("s1")
    ids.charger_answered(parse_frame('[4,"s1","InternalError","",{}]'))
    start = ids.start("s1")
    assert start is not None
    assert start.charger_answered.is_set()
    assert start.charger_id is None


def test_only_the_latest_starts_are_remembered_and_release_frees_every_waiter() -> None:
    ids = BackendTransactions()
    for n in range(STARTS + 1):
        ids.started(f"s{n}")
    assert ids.start("s0") is None
    ids.release()
    start = ids.start(f"s{STARTS}")
    assert start is not None
    assert start.charger_answered.is_set()
    assert start.backend_answered.is_set()
