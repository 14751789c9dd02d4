"""The log query contract between the inject-api and the logger (NATS request/reply).

The API sends a :class:`LogQuery` as JSON on ``{prefix}.logs.query`` (``Subjects.logs_query``).
Every logger subscribes there in the queue group :data:`QUEUE_GROUP`, so several loggers
share the work and a deployment without one gets NATS's "no responders" at once. The
logger answers with one :class:`LogPage`, or with one :class:`LogQueryError` (the only
other shape; tell them apart with :func:`parse_reply`). Its ``code`` decides the HTTP
status in exactly one place (:data:`HTTP_STATUS`).

Pages are newest first. ``nextCursor`` is set when more entries may follow: send the same
query again with ``cursor`` set to it (keyset pagination, so new traffic arriving between
two requests never shifts or repeats entries). An encoded page never exceeds the NATS
payload limit: the logger returns fewer entries than ``limit`` (and a cursor) rather than
a page that would not fit, and cuts the ``raw`` text of a single oversized frame
(``truncated`` is then true).

Export of any size needs nothing more: page through ``logs.query`` with
:data:`MAX_LIMIT` and the cursor until ``nextCursor`` is null (see :func:`export_query`).

Times: ``since`` and ``until`` take Unix seconds or an RFC 3339 time; a page holds entries
with ``since < time <= until``, so consecutive windows never overlap.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic.alias_generators import to_camel

from oye_shared.inject import Problem
from oye_shared.subjects import Direction

QUEUE_GROUP = "oye-logger"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
#: Latest time accepted in ``since``/``until`` (year 5138): guards the microsecond integer.
MAX_UNIX_SECONDS = 1e11


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class EntryKind(StrEnum):
    FRAME = "frame"  # an OCPP frame, from {prefix}.frames.>
    EVENT = "event"  # a connection event, from {prefix}.events.>; its kind is the action


def parse_time(value: Any) -> float:
    """Unix seconds from a number, a numeric string or an RFC 3339 time (UTC if no offset)."""
    if isinstance(value, bool):
        raise ValueError("must be Unix seconds or an RFC 3339 time")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                raise ValueError("must be Unix seconds or an RFC 3339 time") from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            seconds = moment.timestamp()
    else:
        raise ValueError("must be Unix seconds or an RFC 3339 time")
    if not math.isfinite(seconds) or not 0 <= seconds < MAX_UNIX_SECONDS:
        raise ValueError("must be a time between 1970 and the year 5000")
    return seconds


def to_micros(seconds: float) -> int:
    return round(seconds * 1_000_000)


def encode_cursor(time_us: int, entry_id: int) -> str:
    """The opaque cursor that points just past an entry (its time and store id)."""
    raw = json.dumps([time_us, entry_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    """Invert :func:`encode_cursor`; ValueError on anything it could not have made."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        time_us, entry_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise ValueError("not a cursor this service gave out") from None
    if not all(type(n) is int and 0 <= n < 2**63 for n in (time_us, entry_id)):
        raise ValueError("not a cursor this service gave out")
    return time_us, entry_id


class LogQuery(_Wire):
    """Filters, page size and position; every filter is optional and they combine (AND)."""

    charge_point_id: str | None = Field(default=None, min_length=1, max_length=1000)
    direction: Direction | None = None
    kind: EntryKind | None = None
    #: The action of a CALL/SEND, of the call a reply answers, or the kind of an event.
    action: str | None = Field(default=None, min_length=1, max_length=200)
    message_id: str | None = Field(default=None, min_length=1, max_length=200)
    #: Entries strictly after this time (Unix seconds; RFC 3339 accepted on input).
    since: float | None = None
    #: Entries at or before this time (Unix seconds; RFC 3339 accepted on input).
    until: float | None = None
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    #: ``nextCursor`` of the previous page.
    cursor: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("since", "until", mode="before")
    @classmethod
    def _time(cls, value: Any) -> float | None:
        return None if value is None else parse_time(value)

    @field_validator("cursor")
    @classmethod
    def _cursor(cls, value: str | None) -> str | None:
        if value is not None:
            decode_cursor(value)
        return value

    @field_validator("until")
    @classmethod
    def _window(cls, value: float | None, info: ValidationInfo) -> float | None:
        since = info.data.get("since")
        if value is not None and since is not None and value <= since:
            raise ValueError("until must be later than since")
        return value

    @property
    def since_us(self) -> int | None:
        return None if self.since is None else to_micros(self.since)

    @property
    def until_us(self) -> int | None:
        return None if self.until is None else to_micros(self.until)

    @property
    def after(self) -> tuple[int, int] | None:
        """The (time, id) key the page starts below, from the cursor."""
        return None if self.cursor is None else decode_cursor(self.cursor)


class LogEntry(BaseModel):
    """One stored frame or event: the original OYE fields, then the richer ones."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    # The original OYE log fields, spelled as OYE spelled them.
    id: int
    charge_point_id: str = Field(alias="charge_point_id")
    direction: str | None  # a Direction; None for events
    #: The whole frame (or event body) parsed as JSON; None when it is not valid JSON.
    payload: Any = None
    #: Unix seconds, with microseconds.
    timestamp: float

    frame_id: str
    time: str  # RFC 3339, UTC, microseconds
    kind: EntryKind
    message_type: str | None = None  # CALL ... SEND, MALFORMED; None for events
    message_id: str | None = None
    action: str | None = None
    error: str | None = None  # why a MALFORMED frame is malformed
    #: The frame exactly as it crossed the wire (``encoding`` says how it is written here).
    raw: str
    #: ``utf-8``, or ``base64`` for bytes that are not UTF-8 text (or hold NUL characters).
    encoding: str = "utf-8"
    binary: bool = False  # it arrived as a binary WebSocket message
    subprotocol: str | None = None
    relay: str | None = None
    #: ``raw`` was cut (and ``payload`` dropped) to fit the page in one NATS message.
    truncated: bool = False


class LogPage(_Wire):
    entries: list[LogEntry]
    next_cursor: str | None = None


class ErrorCode(StrEnum):
    INVALID = "invalid"  # the query is wrong: see problems
    UNAVAILABLE = "unavailable"  # the store could not answer now; try again


class LogQueryError(_Wire):
    """The one error shape, e.g. ``{"error": "...", "code": "invalid", "problems": [...]}``."""

    error: str
    code: ErrorCode = ErrorCode.INVALID
    problems: list[Problem] = Field(default_factory=list)


HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID: 422,
    ErrorCode.UNAVAILABLE: 503,
}


def problems_of(exc: ValidationError) -> list[Problem]:
    """Each validation error as a JSON path (``$.limit``) and a message a person can act on."""
    problems = []
    for error in exc.errors(include_url=False):
        path = "$" + "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]
        )
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(Problem(path=path, message=message))
    return problems


def validate_query(data: Any) -> LogQuery | LogQueryError:
    """A query from untrusted input (a dict or JSON bytes), or the error that says why not."""
    try:
        if isinstance(data, bytes | str):
            return LogQuery.model_validate_json(data)
        return LogQuery.model_validate(data)
    except ValidationError as exc:
        return LogQueryError(error="invalid log query", problems=problems_of(exc))


def is_error_reply(data: bytes) -> bool:
    """Whether a logger's reply is the error shape (its encoding starts with ``error``)."""
    return data.startswith(b'{"error"')


def parse_reply(data: bytes) -> LogPage | LogQueryError:
    """A logger's reply: a page or the error shape."""
    if is_error_reply(data):
        return LogQueryError.model_validate_json(data)
    return LogPage.model_validate_json(data)


def export_query(query: LogQuery, cursor: str | None) -> LogQuery:
    """The next request of an export: the same filters, the largest page, the given cursor."""
    return query.model_copy(update={"limit": MAX_LIMIT, "cursor": cursor})
