"""Every relay outcome maps to its HTTP status and body in one place."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.responses import Response

from oye_api.replies import reply_response
from oye_shared.inject import MESSAGE_ID_HEADER, InjectOutcome, InjectReply, Problem

pytestmark = pytest.mark.unit


def body_of(response: Response) -> Any:
    return json.loads(bytes(response.body))


PAYLOAD = '{"status": "Accepted", "limit": 16.0, "a": [1, "]"]}'


def test_result_is_the_payload_text_with_the_message_id_header() -> None:
    """RESULT: 200, the payload as the charger wrote it, and the message id header."""
    reply = InjectReply(
        outcome=InjectOutcome.RESULT, message_id="m-1", frame=f'[3,"m-1",{PAYLOAD}]'
    )
    response = reply_response(reply, "CP1", collect=False)
    assert response.status_code == 200
    assert response.body == PAYLOAD.encode()
    assert response.headers[MESSAGE_ID_HEADER] == "m-1"
    assert response.media_type == "application/json"


def test_collected_result_wraps_payload_and_reports() -> None:
    """RESULT with collect: {"result": <payload text>, "reports": [...]}."""
    reply = InjectReply(
        outcome=InjectOutcome.RESULT,
        message_id="m-2",
        frame=f'[3,"m-2",{PAYLOAD}]',
        reports=[{"requestId": 1, "tbc": True}, {"requestId": 1}],
    )
    response = reply_response(reply, "CP1", collect=True)
    assert response.status_code == 200
    assert bytes(response.body).startswith(b'{"result": ' + PAYLOAD.encode() + b", ")
    assert body_of(response) == {
        "result": json.loads(PAYLOAD),
        "reports": [{"requestId": 1, "tbc": True}, {"requestId": 1}],
    }


def test_collect_without_reports_gives_an_empty_list() -> None:
    """A charger with nothing to report still gives the envelope."""
    reply = InjectReply(outcome=InjectOutcome.RESULT, message_id="m", frame='[3,"m",{}]')
    response = reply_response(reply, "CP1", collect=True)
    assert body_of(response) == {"result": {}, "reports": []}


def test_unreadable_result_frame_is_a_bad_gateway() -> None:
    """RESULT whose frame is not a CALLRESULT: 502 saying so."""
    reply = InjectReply(outcome=InjectOutcome.RESULT, message_id="m", frame="[3,")
    response = reply_response(reply, "CP1", collect=False)
    assert response.status_code == 502
    assert "unreadable" in body_of(response)["detail"]


def test_sent_is_202_with_the_message_id() -> None:
    """SENT: 202 {"status": "sent", "messageId"}."""
    response = reply_response(
        InjectReply(outcome=InjectOutcome.SENT, message_id="m-3"), "CP1", collect=False
    )
    assert response.status_code == 202
    assert body_of(response) == {"status": "sent", "messageId": "m-3"}


def test_call_error_is_502_with_its_fields() -> None:
    """CALL_ERROR: 502 with errorCode, errorDescription, errorDetails and messageId."""
    reply = InjectReply(
        outcome=InjectOutcome.CALL_ERROR,
        message_id="m-4",
        error_code="NotImplemented",
        error_description="no such action",
        error_details={"x": 1},
    )
    response = reply_response(reply, "CP1", collect=False)
    body = body_of(response)
    assert response.status_code == 502
    assert body["errorCode"] == "NotImplemented"
    assert body["errorDescription"] == "no such action"
    assert body["errorDetails"] == {"x": 1}
    assert body["messageId"] == "m-4"
    assert "CP1" in body["detail"]


def test_call_error_fields_are_read_from_the_frame_when_missing() -> None:
    """A CALL_ERROR that carries only the frame still names the error code."""
    reply = InjectReply(
        outcome=InjectOutcome.CALL_ERROR,
        message_id="m",
        frame='[4,"m","NotSupported","nope",{"why":"firmware"}]',
    )
    body = body_of(reply_response(reply, "CP1", collect=False))
    assert (body["errorCode"], body["errorDescription"], body["errorDetails"]) == (
        "NotSupported",
        "nope",
        {"why": "firmware"},
    )


def test_invalid_is_422_with_problems_and_version() -> None:
    """INVALID: 422 with detail, every problem with its path, and the OCPP version."""
    reply = InjectReply(
        outcome=InjectOutcome.INVALID,
        ocpp_version="1.6",
        detail="GetChargingProfiles does not exist in OCPP 1.6; use GetCompositeSchedule",
        problems=[Problem(path="$.connectorId", message="'x' is not of type 'integer'")],
    )
    response = reply_response(reply, "CP1", collect=False)
    body = body_of(response)
    assert response.status_code == 422
    assert body["ocppVersion"] == "1.6"
    assert "GetCompositeSchedule" in body["detail"]
    assert body["problems"] == [
        {"path": "$.connectorId", "message": "'x' is not of type 'integer'"}
    ]


@pytest.mark.parametrize(
    ("outcome", "status", "words"),
    [(InjectOutcome.NOT_CONNECTED, 503, "not connected"), (InjectOutcome.TIMEOUT, 504, "in time")],
)
def test_not_connected_and_timeout_have_a_clear_detail(
    outcome: InjectOutcome, status: int, words: str
) -> None:
    """NOT_CONNECTED: 503; TIMEOUT: 504; both name the charger and carry the message id."""
    response = reply_response(InjectReply(outcome=outcome, message_id="m-5"), "CP 9", collect=False)
    body = body_of(response)
    assert response.status_code == status
    assert words in body["detail"]
    assert "CP 9" in body["detail"]
    assert body["messageId"] == "m-5"
    assert response.headers[MESSAGE_ID_HEADER] == "m-5"
