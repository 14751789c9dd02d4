"""POST /api/inject/{chargePointId} through a real NATS, with the relay's side played by
a responder that keeps the relay's documented contract (InjectRequest in, InjectReply out)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx
import pytest
from nats.aio.client import Client

from oye_shared.inject import MESSAGE_ID_HEADER, InjectOutcome, InjectReply, InjectRequest, Problem
from oye_shared.settings import Settings
from tests.integration.api_support import FakeRelay, answering, running_api, with_admin

pytestmark = pytest.mark.integration

CP = "CP-1"
PAYLOAD = (
    '{"status":"Accepted", "connectorId":0,"scheduleStart":"2023-12-15T10:00:00Z",'
    '"chargingSchedule":{"duration":3600,"chargingRateUnit":"A",'
    '"chargingSchedulePeriod":[{"startPeriod":0,"limit":16.0}]}}'
)
COMPOSITE = {
    "action": "GetCompositeSchedule",
    "payload": {"connectorId": 0, "duration": 3600, "chargingRateUnit": "A"},
}


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_api(with_admin(settings)) as http:
        yield http


def result(message_id: str = "m-1", payload: str = PAYLOAD) -> InjectReply:
    frame = f'[3, "{message_id}",  {payload} ]'
    return InjectReply(outcome=InjectOutcome.RESULT, message_id=message_id, frame=frame)


async def test_result_body_is_the_chargers_payload_byte_for_byte(
    api: httpx.AsyncClient, nc: Client, settings: Settings
) -> None:
    """200: the CALLRESULT payload as the charger wrote it (16.0, key order), id in a header."""
    async with FakeRelay(nc, settings, CP, answering(result("m-1"))) as relay:
        response = await api.post(f"/api/inject/{CP}", json=COMPOSITE)
        request = relay.requests.get_nowait()
    assert response.status_code == 200
    assert response.content == PAYLOAD.encode()
    assert response.headers["content-type"] == "application/json"
    assert response.headers[MESSAGE_ID_HEADER] == "m-1"
    assert request.action == "GetCompositeSchedule"
    assert request.payload == COMPOSITE["payload"]
    assert request.timeout == settings.inject_timeout  # the relay is told the timeout
    assert request.wait is True


async def test_collect_returns_result_and_reports(
    api: httpx.AsyncClient, nc: Client, settings: Settings
) -> None:
    """collect=true: {"result": <payload>, "reports": [<payloads in order>]}."""
    reports = [{"requestId": 1, "tbc": True, "evseId": 1}, {"requestId": 1, "evseId": 0}]
    reply = result("m-2", '{"status":"Accepted"}').model_copy(update={"reports": reports})
    body = {
        "action": "GetChargingProfiles",
        "payload": {"requestId": 1, "chargingProfile": {"chargingProfilePurpose": "TxProfile"}},
        "collect": True,
    }
    async with FakeRelay(nc, settings, CP, answering(reply)) as relay:
        response = await api.post(f"/api/inject/{CP}", json=body)
        assert relay.requests.get_nowait().collect is True
    assert response.status_code == 200
    assert response.json() == {"result": {"status": "Accepted"}, "reports": reports}
    assert response.headers[MESSAGE_ID_HEADER] == "m-2"


async def test_wait_false_in_the_query_gives_202_sent(
    api: httpx.AsyncClient, nc: Client, settings: Settings
) -> None:
    """?wait=false reaches the relay; its SENT answer is 202 {"status":"sent","messageId"}."""
    sent = InjectReply(outcome=InjectOutcome.SENT, message_id="m-3")
    async with FakeRelay(nc, settings, CP, answering(sent)) as relay:
        response = await api.post(f"/api/inject/{CP}?wait=false&timeout=7", json=COMPOSITE)
        request = relay.requests.get_nowait()
    assert (request.wait, request.timeout) == (False, 7.0)
    assert response.status_code == 202
    assert response.json() == {"status": "sent", "messageId": "m-3"}


async def test_call_error_is_502_with_the_chargers_error(
    api: httpx.AsyncClient, nc: Client, settings: Settings
) -> None:
    """A CALLERROR answer: 502 with errorCode, errorDescription, errorDetails, messageId."""
    error = InjectReply(
        outcome=InjectOutcome.CALL_ERROR,
        message_id="m-4",
        frame='[4,"m-4","NotImplemented","Unknown action",{}]',
        error_code="NotImplemented",
        error_description="Unknown action",
        error_details={},
    )
    body = {"action": "GetChargingProfiles", "payload": {"connectorId": 0}, "validate": False}
    async with FakeRelay(nc, settings, CP, answering(error)) as relay:
        response = await api.post(f"/api/inject/{CP}", json=body)
        assert relay.requests.get_nowait().validate_payload is False
    assert response.status_code == 502
    assert response.json() | {"detail": None} == {
        "detail": None,
        "errorCode": "NotImplemented",
        "errorDescription": "Unknown action",
        "errorDetails": {},
        "messageId": "m-4",
    }


async def test_invalid_is_422_with_every_problem_and_the_version(
    api: httpx.AsyncClient, nc: Client, settings: Settings
) -> None:
    """The relay's INVALID answer: 422 with detail, problems (path, message), OCPP version."""
    invalid = InjectReply(
        outcome=InjectOutcome.INVALID,
        ocpp_version="1.6",
        detail="GetChargingProfiles does not exist in OCPP 1.6: use GetCompositeSchedule",
        problems=[
            Problem(path="$", message="unknown action GetChargingProfiles"),
            Problem(path="$.connectorId", message="-1 is less than the minimum of 0"),
        ],
    )
    async with FakeRelay(nc, settings, CP, answering(invalid)):
        response = await api.post(
            f"/api/inject/{CP}",
            json={"action": "GetChargingProfiles", "payload": {"connectorId": -1}},
        )
    assert response.status_code == 422
    body = response.json()
    assert body["ocppVersion"] == "1.6"
    assert "GetCompositeSchedule" in body["detail"]
    assert [problem["path"] for problem in body["problems"]] == ["$", "$.connectorId"]


async def test_not_connected_answer_is_503(
    api: httpx.AsyncClient, nc: Client, settings: Settings
) -> None:
    """A relay that lost the charger answers NOT_CONNECTED: 503."""
    gone = InjectReply(outcome=InjectOutcome.NOT_CONNECTED, detail="charger CP-1 disconnected")
    async with FakeRelay(nc, settings, CP, answering(gone)):
        response = await api.post(f"/api/inject/{CP}", json=COMPOSITE)
    assert response.status_code == 503
    assert response.json()["detail"] == "charger CP-1 disconnected"


async def test_charger_no_relay_holds_is_503_at_once(api: httpx.AsyncClient) -> None:
    """No responder on the subject: 503 well before the 30 s inject timeout."""
    async with asyncio.timeout(2):
        response = await api.post("/api/inject/NOBODY", json=COMPOSITE)
    assert response.status_code == 503
    assert response.json()["detail"] == "charger 'NOBODY' is not connected to any relay"


async def test_relay_timeout_answer_is_504_with_the_message_id(
    api: httpx.AsyncClient, nc: Client, settings: Settings
) -> None:
    """The relay's TIMEOUT answer: 504 naming the message id."""
    timeout = InjectReply(outcome=InjectOutcome.TIMEOUT, message_id="m-6")
    async with FakeRelay(nc, settings, CP, answering(timeout)):
        response = await api.post(f"/api/inject/{CP}", json={**COMPOSITE, "timeout": 1})
    assert response.status_code == 504
    assert response.json()["messageId"] == "m-6"
    assert response.headers[MESSAGE_ID_HEADER] == "m-6"


async def test_silent_relay_gives_504_after_the_timeout_and_a_margin(
    api: httpx.AsyncClient, nc: Client, settings: Settings
) -> None:
    """A relay that never answers (it died): 504 once the NATS request times out."""

    async def silence(request: InjectRequest) -> None:
        return None

    async with FakeRelay(nc, settings, CP, silence), asyncio.timeout(5):
        response = await api.post(f"/api/inject/{CP}?timeout=0.2", json=COMPOSITE)
    assert response.status_code == 504
    assert "no answer from the relay" in response.json()["detail"]


async def test_charge_point_id_is_decoded_then_encoded_as_one_subject_token(
    api: httpx.AsyncClient, nc: Client, settings: Settings
) -> None:
    """An id with '.', ' ', '*', '/' and non-ASCII reaches the relay that holds exactly it."""
    odd = "RDAM.12 3*/Zürich>"
    async with FakeRelay(nc, settings, odd, answering(result("m-7"))) as relay:
        response = await api.post(f"/api/inject/{quote(odd, safe='')}", json=COMPOSITE)
        assert relay.subject == "oye.inject.RDAM%2E12%203%2A/Zürich%3E"
    assert response.status_code == 200


async def test_empty_charge_point_id_is_refused(api: httpx.AsyncClient) -> None:
    """POST /api/inject/ with no id: 422, nothing sent."""
    response = await api.post("/api/inject/", json=COMPOSITE)
    assert response.status_code == 422
    assert "empty" in response.json()["detail"]


async def test_body_errors_are_422_listing_every_problem_and_nothing_is_sent(
    api: httpx.AsyncClient, nc: Client, settings: Settings
) -> None:
    """A body without action and with a non-object payload: 422 naming both; relay untouched."""
    async with FakeRelay(nc, settings, CP, answering(result())) as relay:
        response = await api.post(
            f"/api/inject/{CP}", json={"payload": [1], "timeout": -1, "colour": "red"}
        )
        assert relay.requests.empty()
    assert response.status_code == 422
    locations = {tuple(problem["loc"]) for problem in response.json()["detail"]}
    assert locations == {
        ("body", "action"),
        ("body", "payload"),
        ("body", "timeout"),
        ("body", "colour"),
    }


async def test_bad_json_and_bad_query_are_422(api: httpx.AsyncClient) -> None:
    """Text that is not JSON, and ?timeout=0, are refused with 422."""
    not_json = await api.post(
        f"/api/inject/{CP}", content=b"{nope", headers={"content-type": "application/json"}
    )
    bad_query = await api.post(f"/api/inject/{CP}?timeout=0", json=COMPOSITE)
    assert not_json.status_code == 422
    assert bad_query.status_code == 422
    assert [problem["loc"] for problem in bad_query.json()["detail"]] == [["query", "timeout"]]


async def test_injection_needs_credentials(settings: Settings) -> None:
    """Without Basic auth the injection is refused with 401 before anything is sent."""
    async with running_api(with_admin(settings), auth=None) as http:
        response = await http.post(f"/api/inject/{CP}", content=json.dumps(COMPOSITE))
    assert response.status_code == 401


async def test_an_injection_too_large_for_nats_is_413(nc: Client, settings: Settings) -> None:
    """A payload over NATS's message limit is refused with 413, not a bus error (with an
    HTTP body limit above NATS's, so that NATS's is the one that bites)."""
    roomy = settings.model_copy(update={"max_http_body_bytes": 4 * nc.max_payload})
    huge = {"action": "DataTransfer", "payload": {"vendorId": "x", "data": "x" * nc.max_payload}}
    async with (
        running_api(with_admin(roomy)) as api,
        FakeRelay(nc, roomy, CP, answering(result())) as relay,
    ):
        response = await api.post(f"/api/inject/{CP}", json=huge)
        assert relay.requests.empty()
    assert response.status_code == 413
    assert "message limit" in response.json()["detail"]
