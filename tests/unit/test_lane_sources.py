"""The lane takes turns between sources; backend ids are swapped without touching the rest."""

from __future__ import annotations

import json

import pytest

from oye_relay.backend_calls import BackendCalls, policy_reply
from oye_relay.lane import CallLane, LaneCall, Origin
from oye_relay.message_ids import new_lane_id, with_message_id
from oye_shared.backends import Policy
from oye_shared.frames import parse_frame


def call(source: str, n: int) -> LaneCall:
    return LaneCall(
        message_id=f"{source}-{n}",
        action="GetConfiguration",
        text="",
        origin=Origin.CSMS,
        deadline=0.0,
        source=source,
    )


async def test_a_flooding_source_waits_for_the_others_turns() -> None:
    """Round robin between sources, FIFO within one."""
    lane = CallLane()
    assert lane.submit(call("a", 0))
    for n in range(1, 4):
        lane.submit(call("a", n))
    lane.submit(call("b", 1))
    lane.submit(call("injected", 1))
    order = []
    while (following := lane.advance()) is not None:
        order.append(following.message_id)
    assert order == ["a-1", "b-1", "injected-1", "a-2", "a-3"]
    assert lane.depth == 0


async def test_a_withdrawn_call_leaves_its_sources_turn_when_it_was_the_last() -> None:
    lane = CallLane()
    lane.submit(call("a", 0))
    waiting = call("b", 1)
    lane.submit(waiting)
    assert lane.withdraw(waiting)
    assert not lane.withdraw(waiting)
    assert lane.advance() is None


def test_the_message_id_is_replaced_and_nothing_else() -> None:
    text = '[2 , "abc\\"d",  "GetConfiguration", {"key": ["A" ,"B"]}]'
    new = new_lane_id()
    assert len(new) == 36
    replaced = with_message_id(text, new)
    assert replaced == f'[2 , "{new}",  "GetConfiguration", {{"key": ["A" ,"B"]}}]'
    assert with_message_id('[3,"x",{"a":1}]', 'abc\\"d') == '[3,"abc\\\\\\"d",{"a":1}]'
    with pytest.raises(ValueError, match="message id"):
        with_message_id("[]", new)


async def test_backend_calls_remember_whose_answer_is_whose() -> None:
    """With secondaries the lane id is new and routes back to the source's own id."""
    frame = parse_frame('[2,"same-id","GetConfiguration",{}]')
    calls = BackendCalls(rewrite_ids=True)
    first = calls.lane_call("primary", frame, '[2,"same-id","GetConfiguration",{}]', deadline=1)
    second = calls.lane_call("ha", frame, '[2,"same-id","GetConfiguration",{}]', deadline=1)
    assert first.message_id != second.message_id
    assert json.loads(str(second.text))[1] == second.message_id
    route = calls.route(second.message_id)
    assert route is not None
    assert (route.source, route.original_id) == ("ha", "same-id")
    assert calls.route(second.message_id) is None
    alone = BackendCalls(rewrite_ids=False).lane_call("primary", frame, "x", deadline=1)
    assert alone.message_id == "same-id"
    assert alone.text == "x"


def test_policy_replies_answer_reject_and_refuse_unknown_actions() -> None:
    frame = parse_frame('[2,"m1","Reset",{"type":"Soft"}]')
    answered = json.loads(policy_reply("1.6", "ha", Policy.ANSWER, frame, {}))
    assert answered == [3, "m1", {"status": "Rejected"}]
    configured = policy_reply("1.6", "ha", Policy.ANSWER, frame, {"Reset": {"status": "Accepted"}})
    assert json.loads(configured) == [3, "m1", {"status": "Accepted"}]
    rejected = json.loads(policy_reply("1.6", "ha", Policy.REJECT, frame, {}))
    assert rejected[:3] == [4, "m1", "SecurityError"]
    assert "'ha'" in rejected[3]
    vendor = parse_frame('[2,"m2","MadeUp",{}]')
    refused = json.loads(policy_reply("2.0.1", "ha", Policy.ANSWER, vendor, {}))
    assert refused[:3] == [4, "m2", "NotSupported"]
