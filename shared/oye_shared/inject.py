"""The injection contract between the inject-api and the relay (NATS request/reply).

The API sends an :class:`InjectRequest` as JSON on ``{prefix}.inject.{cp}``; only the relay
that holds the charger subscribes there, so a charger nobody holds gets NATS's "no
responders" at once. The relay answers with one :class:`InjectReply`; its ``outcome``
decides the HTTP status in exactly one place (:data:`HTTP_STATUS`).

A request with the header ``Oye-Query: state`` (and any body) asks the holder for the
charger's :class:`~oye_shared.state.ChargerState` instead: what the relay knows now, where
the fleet's KV entry is written a moment after a change.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

#: The header of a query on the inject subject, and its one value so far.
QUERY = "Oye-Query"
STATE_QUERY = "state"


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class InjectRequest(_Wire):
    action: str = Field(min_length=1, max_length=100)
    payload: dict[str, Any]
    #: Seconds to wait for the charger's answer; ``None`` means ``OYE_INJECT_TIMEOUT``.
    timeout: float | None = Field(default=None, gt=0, le=3600)
    #: False: reply "sent" as soon as the CALL went out.
    wait: bool = True
    #: True: also wait for the follow-up reports (2.0.1+) and return them.
    collect: bool = False
    #: False: skip schema validation (vendor-specific actions).
    validate_payload: bool = Field(default=True, alias="validate")


class InjectOutcome(StrEnum):
    RESULT = "result"  # the charger sent a CALLRESULT
    CALL_ERROR = "call_error"  # the charger sent a CALLERROR
    TIMEOUT = "timeout"  # no answer in time (a late one is swallowed and logged)
    NOT_CONNECTED = "not_connected"  # the charger is not (or no longer) connected
    INVALID = "invalid"  # refused before sending: unknown action or bad payload
    SENT = "sent"  # wait=false: the CALL went out


class Problem(_Wire):
    """One validation problem, located by a JSON path such as ``$.csChargingProfiles``."""

    path: str
    message: str


class InjectReply(_Wire):
    outcome: InjectOutcome
    message_id: str | None = None
    ocpp_version: str | None = None
    #: The charger's CALLRESULT or CALLERROR frame exactly as it arrived.
    frame: str | None = None
    error_code: str | None = None
    error_description: str | None = None
    error_details: Any = None
    #: Follow-up report payloads, in arrival order (collect=true).
    reports: list[dict[str, Any]] | None = None
    problems: list[Problem] | None = None
    detail: str | None = None


HTTP_STATUS: dict[InjectOutcome, int] = {
    InjectOutcome.RESULT: 200,
    InjectOutcome.SENT: 202,
    InjectOutcome.INVALID: 422,
    InjectOutcome.CALL_ERROR: 502,
    InjectOutcome.NOT_CONNECTED: 503,
    InjectOutcome.TIMEOUT: 504,
}

#: Response header that carries the OCPP message id of an injected call.
MESSAGE_ID_HEADER = "X-OYE-Message-Id"
