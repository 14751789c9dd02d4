"""What the offline replay keeps, how it sends it again, what the CSMS's answer means."""

from __future__ import annotations

import json

import pytest

from oye_relay.replay_rules import (
    Route,
    Verdict,
    is_kept,
    judge_answer,
    replay_text,
    secondary_route,
)
from oye_relay.transaction_ids import FIRST
from oye_relay.transaction_map import MAX_ENTRIES, TransactionMap
from oye_shared.frames import Frame, parse_frame

pytestmark = pytest.mark.unit

OURS = FIRST + 7


def frame(text: str) -> Frame:
    return parse_frame(text)


@pytest.mark.parametrize(
    ("version", "text", "kept"),
    [
        ("1.6", '[2,"1","StartTransaction",{"connectorId":1}]', True),
        ("1.6", '[2,"1","StopTransaction",{"transactionId":5}]', True),
        ("1.6", '[2,"1","MeterValues",{"connectorId":1,"transactionId":5,"meterValue":[]}]', True),
        ("1.6", '[2,"1","MeterValues",{"connectorId":1,"meterValue":[]}]', False),
        ("1.6", '[2,"1","StatusNotification",{}]', True),
        ("1.6", '[2,"1","BootNotification",{}]', True),
        ("1.6", '[2,"1","Heartbeat",{}]', False),
        ("1.6", '[2,"1","Authorize",{"idTag":"x"}]', False),
        ("2.0.1", '[2,"1","TransactionEvent",{}]', True),
        ("2.1", '[2,"1","TransactionEvent",{}]', True),
        ("2.0.1", '[2,"1","MeterValues",{"evseId":1,"meterValue":[]}]', False),
        ("2.0.1", '[2,"1","StartTransaction",{}]', False),
        ("1.6", '[3,"1",{}]', False),
    ],
)
def test_what_is_kept(version: str, text: str, kept: bool) -> None:
    assert is_kept(version, frame(text)) is kept


def test_201_transaction_events_are_marked_offline_and_keep_the_rest() -> None:
    text = '[2,"m1","TransactionEvent",{"eventType":"Ended","seqNo":4,"timestamp":"T","x":1.5}]'
    sent = json.loads(replay_text("2.0.1", frame(text), text))
    assert sent == [
        2,
        "m1",
        "TransactionEvent",
        {"eventType": "Ended", "seqNo": 4, "timestamp": "T", "x": 1.5, "offline": True},
    ]
    marked = '[2,"m1","TransactionEvent",{"offline":true}]'
    assert replay_text("2.0.1", frame(marked), marked) == marked  # byte for byte
    start = '[2,"m1","StartTransaction",{"connectorId":1}]'
    assert replay_text("1.6", frame(start), start) == start


@pytest.mark.parametrize(
    ("action", "answer", "verdict", "tx"),
    [
        (
            "StartTransaction",
            '[3,"1",{"transactionId":9,"idTagInfo":{"status":"Accepted"}}]',
            Verdict.TAKEN,
            9,
        ),
        (
            "StartTransaction",
            '[3,"1",{"transactionId":9,"idTagInfo":{"status":"Blocked"}}]',
            Verdict.REFUSED,
            9,
        ),
        ("StopTransaction", '[3,"1",{"idTagInfo":{"status":"Invalid"}}]', Verdict.REFUSED, None),
        ("StopTransaction", '[3,"1",{}]', Verdict.TAKEN, None),
        ("TransactionEvent", '[3,"1",{"idTokenInfo":{"status":"Unknown"}}]', Verdict.REFUSED, None),
        ("MeterValues", '[4,"1","InternalError","down",{}]', Verdict.RETRY, None),
        ("StartTransaction", '[3,"1",{"transactionId":true}]', Verdict.TAKEN, None),
    ],
)
def test_answers_are_judged(action: str, answer: str, verdict: Verdict, tx: int | None) -> None:
    judged = judge_answer(action, frame(answer))
    assert (judged.verdict, judged.csms_transaction_id) == (verdict, tx)


def test_no_answer_is_a_retry() -> None:
    assert judge_answer("MeterValues", None).verdict is Verdict.RETRY


def test_the_map_rewrites_mapped_ids_both_ways_and_nothing_else() -> None:
    mapping = TransactionMap({OURS: 500})
    up = f'[2,"a","MeterValues",{{"connectorId":1,"transactionId":{OURS},"meterValue":[]}}]'
    assert json.loads(mapping.towards_csms(frame(up), up))[3]["transactionId"] == 500
    online = '[2,"a","StopTransaction", {"transactionId":42,"meterStop":1}]'
    assert mapping.towards_csms(frame(online), online) == online  # untouched, byte for byte
    down = (
        '[2,"b","SetChargingProfile",{"connectorId":1,"csChargingProfiles":'
        '{"chargingProfileId":1,"transactionId":500,"chargingProfilePurpose":"TxProfile"}}]'
    )
    rewritten = json.loads(mapping.towards_charger(frame(down), down))
    assert rewritten[3]["csChargingProfiles"]["transactionId"] == OURS
    stop = '[2,"c","RemoteStopTransaction",{"transactionId":500}]'
    assert json.loads(mapping.towards_charger(frame(stop), stop))[3] == {"transactionId": OURS}
    reply = '[3,"c",{"transactionId":500}]'
    assert mapping.towards_charger(frame(reply), reply) == reply  # only CALLs


def test_an_id_outside_the_proxys_range_is_never_rewritten_upwards() -> None:
    mapping = TransactionMap({7: 500})  # a stored map can only hold our ids; a bad one is inert
    up = '[2,"a","StopTransaction",{"transactionId":7,"meterStop":1,"timestamp":"T"}]'
    assert mapping.towards_csms(frame(up), up) == up


def test_the_map_survives_json_and_forgets_the_oldest() -> None:
    mapping = TransactionMap()
    for n in range(MAX_ENTRIES + 5):
        mapping.add(FIRST + n, n)
    again = TransactionMap.from_json(mapping.to_json())
    assert again.csms_id(FIRST) is None
    assert again.csms_id(FIRST + MAX_ENTRIES + 4) == MAX_ENTRIES + 4
    assert not TransactionMap.from_json(b"not json")
    assert not TransactionMap.from_json(b'{"x": "y"}')


def test_a_secondarys_map_read_back_rewrites_any_charger_id() -> None:
    """A secondary's map names the primary's ids too, and stays so through JSON."""
    stored = TransactionMap({100: 900}, any_charger_id=True).to_json()
    mapping = TransactionMap.from_json(stored, any_charger_id=True)
    up = '[2,"a","StopTransaction",{"transactionId":100,"meterStop":1,"timestamp":"T"}]'
    assert json.loads(mapping.towards_csms(frame(up), up))[3]["transactionId"] == 900
    assert TransactionMap.from_json(stored).towards_csms(frame(up), up) == up  # the primary's


BOOT = '[2,"1","BootNotification",{}]'
HEARTBEAT = '[2,"1","Heartbeat",{}]'
ANSWER = '[3,"9",{"status":"Accepted"}]'


@pytest.mark.parametrize(
    ("text", "from_charger", "connected", "catching_up", "route"),
    [
        (BOOT, True, True, False, Route.SEND),  # live
        (HEARTBEAT, True, True, False, Route.SEND),
        (BOOT, True, False, False, Route.KEEP),  # away: what it needs later is kept
        (HEARTBEAT, True, False, False, Route.DROP),
        (BOOT, True, True, True, Route.KEEP),  # catching up: new CALLs wait behind the queue
        (HEARTBEAT, True, True, True, Route.DROP),
        (ANSWER, False, True, True, Route.SEND),  # answers to its own CALLs pass at once
        (ANSWER, False, False, False, Route.DROP),
    ],
)
def test_where_a_frame_for_a_secondary_goes(
    text: str, from_charger: bool, connected: bool, catching_up: bool, route: Route
) -> None:
    assert (
        secondary_route(
            "1.6",
            frame(text),
            from_charger=from_charger,
            connected=connected,
            catching_up=catching_up,
        )
        is route
    )


def test_a_malformed_frame_is_never_kept_for_a_secondary() -> None:
    assert (
        secondary_route("1.6", None, from_charger=True, connected=False, catching_up=False)
        is Route.DROP
    )
