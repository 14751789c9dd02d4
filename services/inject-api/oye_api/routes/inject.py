"""``POST /api/inject/{chargePointId}``: send an OCPP CALL to a charger, return its answer.

The API keeps no per-charger state: it sends a NATS request on ``{prefix}.inject.{cp}``,
where only the relay that holds the charger listens. If no relay holds it, NATS says
"no responders" at once and the API answers 503 without waiting. The relay answers with
one :class:`InjectReply` (it times out the charger itself); :mod:`oye_api.replies` maps
that to HTTP.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import nats.errors
from fastapi import APIRouter, Body, Path, Query
from fastapi.responses import Response
from nats.aio.client import Client
from pydantic import ValidationError

from oye_api.deps import Nats, State
from oye_api.examples import INJECT_EXAMPLES
from oye_api.models import CallErrorBody, CollectedBody, ErrorBody, InvalidBody, SentBody
from oye_api.replies import BAD_GATEWAY, error_response, reply_response
from oye_shared.inject import MESSAGE_ID_HEADER, InjectReply, InjectRequest
from oye_shared.subjects import Subjects

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/inject", tags=["inject"])


def nats_timeout(charger_timeout: float) -> float:
    """How long the API waits on NATS: a little longer than the relay waits on the charger.

    The relay answers TIMEOUT itself; the NATS timeout only fires if the relay is gone.
    """
    return charger_timeout + 1.0 + 0.1 * charger_timeout


SERVICE_UNAVAILABLE = 503
GATEWAY_TIMEOUT = 504
UNPROCESSABLE = 422
CONTENT_TOO_LARGE = 413

_message_id_header = {MESSAGE_ID_HEADER: {"description": "the OCPP message id of the CALL"}}
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The charger's CALLRESULT payload, exactly as it sent it "
        "(with `collect`: `{result, reports}`)",
        "content": {"application/json": {"schema": CollectedBody.model_json_schema()}},
        "headers": _message_id_header,
    },
    202: {"model": SentBody, "description": "`wait` was false: the CALL went out"},
    422: {
        "model": InvalidBody,
        "description": "Not sent: unknown action for the charger's OCPP version or a "
        "payload that breaks its schema (every problem with its path); "
        "or a request body that is not an injection (FastAPI's list of problems)",
    },
    502: {"model": CallErrorBody, "description": "The charger answered with a CALLERROR"},
    503: {"model": ErrorBody, "description": "The charger is not connected to any relay"},
    504: {"model": ErrorBody, "description": "No answer within the timeout"},
}


@router.post(
    "/{chargePointId:path}",
    summary="Inject an OCPP CALL into a charger",
    responses=RESPONSES,
    response_class=Response,
)
async def inject(
    state: State,
    nc: Nats,
    charge_point_id: Annotated[
        str, Path(alias="chargePointId", description="As the charger gave it (URL-encoded)")
    ],
    body: Annotated[InjectRequest, Body(openapi_examples=INJECT_EXAMPLES)],
    wait: Annotated[
        bool | None, Query(description="false: answer 202 once the CALL is sent")
    ] = None,
    timeout_query: Annotated[
        float | None,
        Query(alias="timeout", gt=0, le=3600, description="seconds; default OYE_INJECT_TIMEOUT"),
    ] = None,
) -> Response:
    """Send `action` with `payload` to the charger and return what it answered.

    Query parameters `wait` and `timeout`, when given, override the body's.
    """
    if not charge_point_id:
        return error_response(UNPROCESSABLE, "the charge point id in the path is empty")
    # The relay is told the timeout to use, so that both sides agree on it.
    charger_timeout = timeout_query or body.timeout or state.settings.inject_timeout
    request = body.model_copy(
        update={"timeout": charger_timeout, "wait": body.wait if wait is None else wait}
    )
    return await send_to_relay(nc, state.settings.subject_prefix, charge_point_id, request)


async def send_to_relay(
    nc: Client, subject_prefix: str, charge_point_id: str, request: InjectRequest
) -> Response:
    """Send ``request`` (its timeout set) to the relay holding the charger; the HTTP answer."""
    charger_timeout = request.timeout or 30.0
    subject = Subjects(subject_prefix).inject(charge_point_id)
    data = request.model_dump_json(by_alias=True).encode()
    log.info("inject %s into %s", request.action, charge_point_id)
    try:
        message = await nc.request(subject, data, timeout=nats_timeout(charger_timeout))
    except nats.errors.NoRespondersError:
        log.info("inject %s into %s: not connected to any relay", request.action, charge_point_id)
        return error_response(
            SERVICE_UNAVAILABLE, f"charger {charge_point_id!r} is not connected to any relay"
        )
    except nats.errors.MaxPayloadError:
        return error_response(
            CONTENT_TOO_LARGE, f"the injection exceeds NATS's {nc.max_payload}-byte message limit"
        )
    except nats.errors.TimeoutError:
        log.warning("inject %s into %s: the relay did not answer", request.action, charge_point_id)
        return error_response(
            GATEWAY_TIMEOUT,
            f"no answer from the relay holding charger {charge_point_id!r} "
            f"within {nats_timeout(charger_timeout):g} s",
        )
    try:
        reply = InjectReply.model_validate_json(message.data)
    except ValidationError as exc:
        log.error("inject into %s: unreadable reply from the relay: %s", charge_point_id, exc)
        return error_response(BAD_GATEWAY, "the relay sent an unreadable reply")
    log.info(
        "inject %s into %s: %s (message id %s)",
        request.action,
        charge_point_id,
        reply.outcome,
        reply.message_id,
    )
    return reply_response(reply, charge_point_id, collect=request.collect)
