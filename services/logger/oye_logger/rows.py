"""From a NATS message (subject, headers, body) to the row the stores keep: pure, never raises.

A frame's facts come from the relay's ``Oye-*`` headers; what a header misses is read from
the subject (charge point, direction, event kind) or from the JetStream metadata the
consumer passes in (a stable id and the stream's time), so even a message published by
hand is stored once and found again.

The body is kept exactly: as text when it is UTF-8 without NUL characters (PostgreSQL
text cannot hold NUL), else as base64 with ``encoding = 'base64'``. ``is_json`` says
whether the text is JSON, i.e. whether it has a payload: a frame the relay typed (its
``Oye-Message-Type`` is not MALFORMED) was parsed there; anything else is checked here,
strictly (no NaN or Infinity).
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, TypeVar

from oye_shared import headers as h
from oye_shared.logquery import EntryKind
from oye_shared.subjects import decode_token

UTF8 = "utf-8"
BASE64 = "base64"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


class LogRow(NamedTuple):
    """One stored frame or event (a tuple: the stores bind its leading fields as they are).

    ``id`` (the store's key) and ``truncated`` (``raw`` was cut) are set on rows read back.
    """

    frame_id: str
    kind: EntryKind
    charge_point_id: str
    direction: str | None
    time_us: int
    message_type: str | None
    message_id: str | None
    action: str | None
    error: str | None
    subprotocol: str | None
    relay: str | None
    is_binary: bool
    encoding: str
    raw: str
    is_json: bool
    id: int | None = None
    truncated: bool = False


#: The relay writes ``YYYY-mm-ddTHH:MM:SS.ffffffZ``: the value of the last second seen is
#: kept, so most frames' times cost a comparison and an ``int``.
_SECOND = slice(0, 19)
_MICROS = slice(20, 26)
_RELAY_TIME_LENGTH = 27
_last_second: tuple[str, int | None] = ("", None)


def parse_time_us(text: str | None) -> int | None:
    """Microseconds since the epoch from an RFC 3339 time (UTC if it names no offset)."""
    global _last_second
    if not text:
        return None
    if (
        len(text) == _RELAY_TIME_LENGTH
        and text[19] == "."
        and text[26] == "Z"
        and text.isascii()
        and text[_MICROS].isdigit()
    ):
        second, base_us = _last_second
        if text[_SECOND] != second:
            second = text[_SECOND]
            # A fraction can only follow seconds: this second's start, exactly as below.
            base_us = _parse_time_us(f"{second}.000000Z")
            _last_second = second, base_us
        return None if base_us is None else base_us + int(text[_MICROS])
    return _parse_time_us(text)


def _parse_time_us(text: str) -> int | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _ONE_US


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


_STRICT = json.JSONDecoder(parse_constant=_reject_constant)


def is_strict_json(text: str) -> bool:
    """Whether ``text`` is JSON that any store accepts (Python alone would take NaN)."""
    try:
        _STRICT.decode(text)
    except (ValueError, RecursionError):
        return False
    return True


def encode_body(body: bytes) -> tuple[str, str]:
    """The body as stored text and its encoding (``utf-8`` or ``base64``)."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return base64.b64encode(body).decode(), BASE64
    if "\x00" in text:
        return base64.b64encode(body).decode(), BASE64
    return text, UTF8


def decode_body(raw: str, encoding: str) -> bytes:
    """Invert :func:`encode_body`."""
    return base64.b64decode(raw) if encoding == BASE64 else raw.encode()


#: Looked up once: an enum member read through its class is slow in Python 3.11.
_EVENT = EntryKind.EVENT
_FRAME = EntryKind.FRAME
_UNTYPED = (None, h.MALFORMED)
#: Builds a LogRow from a tuple in C (the generated ``__new__`` is a Python call per row).
_new_row = functools.partial(tuple.__new__, LogRow)

#: The headers a row is made of, in the order :meth:`RowMaker.rows` takes their values.
HEADERS = (
    h.FRAME_ID,
    h.NATS_MSG_ID,
    h.CHARGE_POINT,
    h.TIME,
    h.DIRECTION,
    h.MESSAGE_TYPE,
    h.MESSAGE_ID,
    h.ACTION,
    h.ERROR,
    h.SUBPROTOCOL,
    h.RELAY,
    h.BINARY,
)
HeaderValues = tuple[str | None, ...]
#: A message as the consumer has it: subject, reply (unused here), body, the values of
#: :data:`HEADERS` (None for each header it lacks).
M = TypeVar("M", bound=tuple[str, Any, bytes, HeaderValues])


def header_values(headers: Mapping[str, str] | None) -> HeaderValues:
    """The values of :data:`HEADERS` in ``headers``."""
    return tuple(map((headers or {}).get, HEADERS))


class RowMaker:
    """Turns the messages of one deployment (one subject prefix) into rows."""

    def __init__(self, prefix: str) -> None:
        self._prefix_len = len(prefix.split("."))

    def make(
        self,
        subject: str,
        body: bytes,
        headers: Mapping[str, str] | None,
        *,
        fallback: Callable[[], tuple[str, int]],
    ) -> LogRow:
        """The row for one message.

        ``fallback()`` gives a frame id and a time (µs) for a message without
        ``Oye-Frame-Id`` or a readable ``Oye-Time``. Its id must be stable across
        redeliveries (e.g. built from the stream sequence).
        """
        message = (subject, None, body, header_values(headers))
        return self.rows([message], lambda _: fallback())[0]

    def rows(self, messages: Iterable[M], fallback: Callable[[M], tuple[str, int]]) -> list[LogRow]:
        """The rows of a batch, in order (as :meth:`make`, ``fallback`` given the message).

        One loop for the batch, in one frame: a function call per row was a good part of
        the logger's time per frame.
        """
        n = self._prefix_len
        out: list[LogRow] = []
        append = out.append
        for message in messages:
            subject, _, body, values = message
            (
                frame_id,
                nats_msg_id,
                charge_point_id,
                time_text,
                direction,
                message_type,
                message_id,
                action,
                error,
                subprotocol,
                relay,
                binary,
            ) = values
            tokens = subject.split(".")
            kind = _EVENT if len(tokens) > n and tokens[n] == "events" else _FRAME
            last = tokens[-1] if len(tokens) > n + 2 else None
            charge_point_id = charge_point_id or _charge_point_of(tokens, n)
            time_us = parse_time_us(time_text)
            try:
                raw = body.decode()
                encoding = UTF8 if "\x00" not in raw else BASE64
            except UnicodeDecodeError:
                encoding = BASE64
            if encoding == BASE64:
                raw = base64.b64encode(body).decode()
            if kind is _EVENT:
                direction = message_type = message_id = None
                action = last
            else:
                direction = direction or last
                message_type = message_type or None
                message_id = message_id or None
                action = action or None
            frame_id = frame_id or nats_msg_id
            if not frame_id or time_us is None:
                fallback_id, fallback_time_us = fallback(message)
                frame_id = frame_id or fallback_id
                time_us = fallback_time_us if time_us is None else time_us
            append(
                _new_row(
                    (
                        frame_id,
                        kind,
                        charge_point_id,
                        direction,
                        time_us,
                        message_type,
                        message_id,
                        action,
                        error or None,
                        subprotocol or None,
                        relay or None,
                        binary == "1",
                        encoding,
                        raw,
                        # A frame the relay could type was parsed as JSON there already.
                        encoding == UTF8 and (message_type not in _UNTYPED or is_strict_json(raw)),
                        None,
                        False,
                    )
                )
            )
        return out


def _charge_point_of(tokens: list[str], prefix_len: int) -> str:
    """The charge point a subject names (for a message without ``Oye-Charge-Point``)."""
    token = tokens[prefix_len + 1] if len(tokens) > prefix_len + 1 else ""
    try:
        return decode_token(token)
    except ValueError:
        return token
