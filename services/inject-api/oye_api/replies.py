"""Turn the relay's :class:`InjectReply` into the HTTP response, in this one place.

The status comes from :data:`oye_shared.inject.HTTP_STATUS`; the body by outcome:

=============  ======  =============================================================
Outcome        Status  Body
=============  ======  =============================================================
RESULT         200     the charger's CALLRESULT payload, byte for byte; with
                       ``collect``: ``{"result": <payload>, "reports": [...]}``
SENT           202     ``{"status": "sent", "messageId": ...}``
INVALID        422     ``{"detail", "problems": [{"path", "message"}], "ocppVersion"}``
CALL_ERROR     502     ``{"detail", "errorCode", "errorDescription", "errorDetails",
                       "messageId"}``
NOT_CONNECTED  503     ``{"detail", "messageId"}``
TIMEOUT        504     ``{"detail", "messageId"}``
=============  ======  =============================================================

Every response that concerns a sent CALL carries its id in ``X-OYE-Message-Id``.
"""

from __future__ import annotations

import json
import logging

from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from oye_api.models import CallErrorBody, ErrorBody, InvalidBody, SentBody
from oye_api.ocpp_text import FrameTextError, result_payload_text
from oye_shared.frames import FrameError, parse_frame
from oye_shared.inject import HTTP_STATUS, MESSAGE_ID_HEADER, InjectOutcome, InjectReply

log = logging.getLogger(__name__)

BAD_GATEWAY = 502


def _headers(message_id: str | None) -> dict[str, str]:
    return {MESSAGE_ID_HEADER: message_id} if message_id else {}


def json_response(status: int, body: BaseModel, message_id: str | None = None) -> JSONResponse:
    return JSONResponse(
        body.model_dump(by_alias=True, mode="json"), status, headers=_headers(message_id)
    )


def error_response(status: int, detail: str, message_id: str | None = None) -> JSONResponse:
    return json_response(status, ErrorBody(detail=detail, message_id=message_id), message_id)


def reply_response(reply: InjectReply, charge_point_id: str, *, collect: bool) -> Response:
    """The HTTP response for the relay's answer to one injection."""
    status = HTTP_STATUS[reply.outcome]
    message_id = reply.message_id
    match reply.outcome:
        case InjectOutcome.RESULT:
            return _result_response(reply, charge_point_id, collect=collect)
        case InjectOutcome.SENT:
            return json_response(status, SentBody(message_id=message_id), message_id)
        case InjectOutcome.INVALID:
            version = f"OCPP {reply.ocpp_version}" if reply.ocpp_version else "OCPP"
            body = InvalidBody(
                detail=reply.detail or f"the request is not valid {version}; nothing was sent",
                problems=reply.problems or [],
                ocpp_version=reply.ocpp_version,
            )
            return json_response(status, body, message_id)
        case InjectOutcome.CALL_ERROR:
            return _call_error_response(reply, charge_point_id)
        case InjectOutcome.NOT_CONNECTED:
            detail = reply.detail or f"charger {charge_point_id!r} is not connected"
            return error_response(status, detail, message_id)
        case InjectOutcome.TIMEOUT:
            detail = reply.detail or f"charger {charge_point_id!r} did not answer in time"
            return error_response(status, detail, message_id)


def _result_response(reply: InjectReply, charge_point_id: str, *, collect: bool) -> Response:
    headers = _headers(reply.message_id)
    try:
        payload = result_payload_text(reply.frame or "")
    except FrameTextError as exc:
        log.error("inject to %s: the relay's RESULT frame is unreadable: %s", charge_point_id, exc)
        return error_response(
            BAD_GATEWAY, f"the relay sent an unreadable CALLRESULT ({exc})", reply.message_id
        )
    if collect:
        # The payload text is kept as the charger sent it; reports arrive already parsed.
        reports = json.dumps(reply.reports or [], ensure_ascii=False)
        payload = f'{{"result": {payload}, "reports": {reports}}}'
    return Response(payload, HTTP_STATUS[reply.outcome], headers, "application/json")


def _call_error_response(reply: InjectReply, charge_point_id: str) -> JSONResponse:
    code, description, details = reply.error_code, reply.error_description, reply.error_details
    if code is None and reply.frame:
        try:
            frame = parse_frame(reply.frame)
        except FrameError:
            pass
        else:
            code, description = frame.error_code, frame.error_description
            details = frame.error_details
    body = CallErrorBody(
        detail=reply.detail or f"charger {charge_point_id!r} answered with CALLERROR {code}",
        error_code=code,
        error_description=description,
        error_details=details,
        message_id=reply.message_id,
    )
    return json_response(HTTP_STATUS[reply.outcome], body, reply.message_id)
