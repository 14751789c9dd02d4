"""``GET /api/logs`` and ``GET /api/logs/export``: the stored traffic, asked of the logger.

The API keeps no log itself: it validates the query (422 with every problem, before
anything is sent), asks a logger on ``{prefix}.logs.query`` (NATS request/reply, see
:mod:`oye_shared.logquery`) and returns its page as it came. The export pages through
the same subject with the cursor and streams one JSON object per line, for any size.

=====================  ======  ========================================================
Situation              Status  Body
=====================  ======  ========================================================
a page                 200     ``{"entries": [...], "nextCursor": ...}``, newest first
a bad parameter        422     ``{"detail", "problems": [{"path", "message"}]}``
no logger running      503     ``{"detail"}``
the store is down      503     ``{"detail"}``
no answer in time      504     ``{"detail"}``
=====================  ======  ========================================================
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import nats.errors
from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response, StreamingResponse
from nats.aio.client import Client

from oye_api.deps import State, get_nats, require_user
from oye_api.models import ErrorBody, InvalidBody
from oye_api.replies import error_response, json_response
from oye_shared.logquery import (
    HTTP_STATUS,
    LogPage,
    LogQuery,
    LogQueryError,
    export_query,
    is_error_reply,
    validate_query,
)
from oye_shared.subjects import Subjects

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/logs", tags=["logs"], dependencies=[Depends(require_user)])

#: How long the API waits for a logger's page.
QUERY_TIMEOUT = 10.0
JSON_LINES = "application/x-ndjson"

RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"model": InvalidBody, "description": "A parameter is wrong: every problem, by path"},
    503: {"model": ErrorBody, "description": "No logger answers, or its store is down"},
    504: {"model": ErrorBody, "description": "The logger did not answer in time"},
}


def get_log_subject(state: State) -> str:
    """The subject the loggers answer on (a dependency, so tests can point it elsewhere)."""
    return Subjects(state.settings.subject_prefix).logs_query


Nats = Annotated[Client, Depends(get_nats)]
LogSubject = Annotated[str, Depends(get_log_subject)]


class LogError(Exception):
    """A query failed; ``response`` says so in HTTP."""

    def __init__(self, response: JSONResponse) -> None:
        super().__init__(response.body)
        self.response = response


def _error(error: LogQueryError) -> JSONResponse:
    status = HTTP_STATUS[error.code]
    if status == 422:
        return json_response(status, InvalidBody(detail=error.error, problems=error.problems))
    return error_response(status, error.error)


async def ask(nc: Client, subject: str, query: LogQuery) -> bytes:
    """One page from a logger, as it sent it; :class:`LogError` if there is none."""
    try:
        message = await nc.request(
            subject, query.model_dump_json(by_alias=True).encode(), timeout=QUERY_TIMEOUT
        )
    except nats.errors.NoRespondersError:
        raise LogError(error_response(503, "no logger is running to answer log queries")) from None
    except nats.errors.TimeoutError:
        raise LogError(
            error_response(504, f"no logger answered within {QUERY_TIMEOUT:g} s")
        ) from None
    if is_error_reply(message.data):
        raise LogError(_error(LogQueryError.model_validate_json(message.data)))
    return message.data


def _query_from(params: dict[str, str | None]) -> LogQuery | JSONResponse:
    query = validate_query({key: value for key, value in params.items() if value is not None})
    return _error(query) if isinstance(query, LogQueryError) else query


# The parameters are read as text and validated by LogQuery, so that a wrong value gets
# the same problem list here as on NATS.
ChargePointId = Annotated[
    str | None, Query(alias="chargePointId", description="exactly as the charger gave it")
]
DirectionParam = Annotated[
    str | None,
    Query(
        description="UPSTREAM, DOWNSTREAM, INJECTION_REQUEST, INJECTION_RESPONSE, "
        "PROXY_RESPONSE or OFFLINE_REPLAY"
    ),
]
KindParam = Annotated[str | None, Query(description="frame or event (default: both)")]
ActionParam = Annotated[
    str | None,
    Query(description="a CALL's action, the action a reply answers, or an event's kind"),
]
MessageIdParam = Annotated[str | None, Query(alias="messageId")]
SinceParam = Annotated[
    str | None, Query(description="entries after this time: Unix seconds or RFC 3339")
]
UntilParam = Annotated[
    str | None, Query(description="entries up to this time: Unix seconds or RFC 3339")
]
LimitParam = Annotated[str | None, Query(description="page size, 1 to 1000 (default 100)")]
CursorParam = Annotated[str | None, Query(description="nextCursor of the previous page")]


def log_filters(
    charge_point_id: ChargePointId = None,
    direction: DirectionParam = None,
    kind: KindParam = None,
    action: ActionParam = None,
    message_id: MessageIdParam = None,
    since: SinceParam = None,
    until: UntilParam = None,
    cursor: CursorParam = None,
) -> dict[str, str | None]:
    """The filters both routes take, by their names in a :class:`LogQuery`."""
    return {
        "chargePointId": charge_point_id,
        "direction": direction,
        "kind": kind,
        "action": action,
        "messageId": message_id,
        "since": since,
        "until": until,
        "cursor": cursor,
    }


Filters = Annotated[dict[str, str | None], Depends(log_filters)]


@router.get(
    "",
    summary="Stored frames and events, newest first, a page at a time",
    response_model=LogPage,
    responses=RESPONSES,
)
async def get_logs(
    nc: Nats, subject: LogSubject, filters: Filters, limit: LimitParam = None
) -> Response:
    """One page; pass its `nextCursor` as `cursor` for the next (older) one."""
    query = _query_from({**filters, "limit": limit})
    if isinstance(query, JSONResponse):
        return query
    try:
        page = await ask(nc, subject, query)
    except LogError as exc:
        return exc.response
    return Response(page, media_type="application/json")


@router.get(
    "/export",
    summary="Every matching entry as JSON Lines, newest first",
    response_class=StreamingResponse,
    responses={200: {"content": {JSON_LINES: {}}}, **RESPONSES},
)
async def export_logs(nc: Nats, subject: LogSubject, filters: Filters) -> Response:
    """The same filters as `GET /api/logs`, all pages, one entry per line.

    An error after the first page ends the transfer without the final chunk, so a client
    can tell a cut export from a complete one.
    """
    query = _query_from(filters)
    if isinstance(query, JSONResponse):
        return query
    query = export_query(query, query.cursor)
    try:
        first = await ask(nc, subject, query)  # errors before streaming get their status
    except LogError as exc:
        return exc.response
    return StreamingResponse(
        _lines(nc, subject, query, first),
        media_type=JSON_LINES,
        headers={"Content-Disposition": 'attachment; filename="oye-logs.jsonl"'},
    )


async def _lines(nc: Client, subject: str, query: LogQuery, page: bytes) -> AsyncIterator[bytes]:
    while True:
        body = json.loads(page)
        for entry in body["entries"]:
            yield json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        if not body.get("nextCursor"):
            return
        try:
            page = await ask(nc, subject, export_query(query, body["nextCursor"]))
        except LogError as exc:
            log.warning("log export cut short: %s", bytes(exc.response.body).decode())
            raise
