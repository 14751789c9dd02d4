"""Request and response bodies of the HTTP API that are not shared wire models."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from oye_api.users import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from oye_shared.inject import Problem


class _Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class ErrorBody(_Body):
    """Any error: ``detail`` says what went wrong in a sentence."""

    detail: str
    message_id: str | None = None


class SentBody(_Body):
    """202: ``wait`` was false and the CALL went out."""

    status: Literal["sent"] = "sent"
    message_id: str | None = None


class CallErrorBody(_Body):
    """502: the charger answered with a CALLERROR."""

    detail: str
    error_code: str | None = None
    error_description: str | None = None
    error_details: Any = None
    message_id: str | None = None


class InvalidBody(_Body):
    """422 from the relay: nothing was sent; every problem with its JSON path."""

    detail: str
    problems: list[Problem] = Field(default_factory=list)
    ocpp_version: str | None = None


class CollectedBody(BaseModel):
    """200 with ``collect``: the CALLRESULT payload and the follow-up report payloads."""

    result: dict[str, Any]
    reports: list[dict[str, Any]]


class ChangePassword(_Body):
    model_config = ConfigDict(extra="forbid")

    #: Optional: the Basic credentials already prove who you are.
    current_password: str | None = None
    new_password: str = Field(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)


class Health(_Body):
    status: Literal["ok", "degraded"]
    nats: Literal["connected", "disconnected"]
    #: Relays whose heartbeat entry has not expired (None if KV could not be read).
    relays: int | None = None
    #: Chargers ONLINE on a live relay (None if KV could not be read).
    chargers: int | None = None
    #: Messages kept for CSMSs that were unreachable, not replayed yet (None: unknown).
    replay_backlog: int | None = None
