"""OCPP-J frame parsing: a pure function from frame text to what routing needs.

The relay never re-serializes what it forwards; it parses a frame only to learn its type,
message id and action (for headers and for routing replies). :func:`parse_frame` raises
nothing but :class:`FrameError` (a ``ValueError``), whatever text or bytes it is given.

=================  ======  ==========================================  ==========
Type               Number  Wire shape                                  Versions
=================  ======  ==========================================  ==========
CALL               2       ``[2, id, action, payload]``                all
CALLRESULT         3       ``[3, id, payload]``                        all
CALLERROR          4       ``[4, id, code, description, details]``     all
CALLRESULTERROR    5       ``[5, id, code, description, details]``     2.1
SEND               6       ``[6, id, action, payload]``                2.1
=================  ======  ==========================================  ==========
"""

from __future__ import annotations

import json
from enum import IntEnum
from typing import Any, NamedTuple

MAX_MESSAGE_ID_LENGTH = 36


class MessageType(IntEnum):
    CALL = 2
    CALLRESULT = 3
    CALLERROR = 4
    CALLRESULTERROR = 5
    SEND = 6


class FrameError(ValueError):
    """The frame is not a well-formed OCPP-J message.

    ``reason`` is one of :data:`FRAME_ERROR_REASONS`; ``message_id`` is set when the id
    could still be read, so that a CALLERROR can name it.
    """

    def __init__(self, reason: str, detail: str, message_id: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.message_id = message_id


#: The documented error set of :func:`parse_frame`.
FRAME_ERROR_REASONS = (
    "not-text",  # bytes that are not UTF-8
    "not-json",  # text that is not JSON
    "not-array",  # JSON, but not an array
    "bad-type",  # first element is not a known message type number
    "bad-id",  # message id missing, not a string, empty or too long
    "bad-shape",  # wrong number or kind of elements for the message type
)


class Frame(NamedTuple):
    """What a parsed frame tells: always type and id; the rest by type.

    A named tuple, immutable as a frozen dataclass would be, made in a fifth of the time
    (every frame the relay forwards is parsed into one: 0.8 against 2 µs here).
    """

    message_type: MessageType
    message_id: str
    action: str | None = None  # CALL and SEND
    payload: Any = None  # CALL, SEND and CALLRESULT
    error_code: str | None = None  # CALLERROR and CALLRESULTERROR
    error_description: str | None = None
    error_details: Any = None

    @property
    def is_call(self) -> bool:
        return self.message_type is MessageType.CALL

    @property
    def is_reply(self) -> bool:
        return self.message_type in (MessageType.CALLRESULT, MessageType.CALLERROR)


def parse_frame(data: str | bytes) -> Frame:
    """Parse one OCPP-J frame. Raises only :class:`FrameError`."""
    if isinstance(data, bytes | bytearray | memoryview):
        try:
            data = bytes(data).decode()
        except UnicodeDecodeError as exc:
            raise FrameError("not-text", "frame is not valid UTF-8") from exc
    try:
        message = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise FrameError("not-json", "frame is not valid JSON") from exc
    if not isinstance(message, list) or not message:
        raise FrameError("not-array", "frame is not a non-empty JSON array")
    raw_type = message[0]
    if type(raw_type) is not int or raw_type not in _SHAPES:
        raise FrameError("bad-type", f"unknown message type {str(raw_type)[:20]!r}")
    message_type = _TYPES[raw_type]  # a dict lookup: MessageType(n) costs ten times more
    message_id = message[1] if len(message) > 1 else None
    if not isinstance(message_id, str) or not 0 < len(message_id) <= MAX_MESSAGE_ID_LENGTH:
        raise FrameError("bad-id", "message id must be a string of 1 to 36 characters")
    if len(message) != _SHAPES[message_type]:
        raise FrameError(
            "bad-shape",
            f"{message_type.name} needs {_SHAPES[message_type]} elements, got {len(message)}",
            message_id,
        )
    if message_type in (MessageType.CALL, MessageType.SEND):
        action, payload = message[2], message[3]
        if not isinstance(action, str) or not action or not isinstance(payload, dict):
            raise FrameError(
                "bad-shape", "a CALL needs an action name and an object payload", message_id
            )
        return Frame(message_type, message_id, action=action, payload=payload)
    if message_type is MessageType.CALLRESULT:
        if not isinstance(message[2], dict):
            raise FrameError("bad-shape", "a CALLRESULT payload must be an object", message_id)
        return Frame(message_type, message_id, payload=message[2])
    code, description, details = message[2], message[3], message[4]
    if not isinstance(code, str) or not isinstance(description, str):
        raise FrameError("bad-shape", "a CALLERROR needs a string code and description", message_id)
    return Frame(
        message_type,
        message_id,
        error_code=code,
        error_description=description,
        error_details=details,
    )


_SHAPES = {
    MessageType.CALL: 4,
    MessageType.CALLRESULT: 3,
    MessageType.CALLERROR: 5,
    MessageType.CALLRESULTERROR: 5,
    MessageType.SEND: 4,
}
_TYPES = {int(kind): kind for kind in MessageType}


def call_frame(message_id: str, action: str, payload: Any) -> str:
    """Serialize a CALL that the proxy itself originates."""
    return json.dumps([MessageType.CALL, message_id, action, payload], separators=(",", ":"))


def call_result_frame(message_id: str, payload: Any) -> str:
    return json.dumps([MessageType.CALLRESULT, message_id, payload], separators=(",", ":"))


def call_error_frame(
    message_id: str, code: str, description: str, details: Any | None = None
) -> str:
    return json.dumps(
        [MessageType.CALLERROR, message_id, code, description[:255], details or {}],
        separators=(",", ":"),
    )
