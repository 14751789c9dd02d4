"""Cut the payload out of a CALLRESULT frame as text, without re-serializing it.

The API answers an injection with exactly what the charger sent: ``16.0`` stays ``16.0``,
key order and spacing stay as they were. The frame is only *scanned* with
:meth:`json.JSONDecoder.raw_decode`, which reports where each element ends::

    result_payload_text('[3, "42", {"limit": 16.0}]') == '{"limit": 16.0}'

:func:`result_payload_text` raises nothing but :class:`FrameTextError` (a ``ValueError``).
"""

from __future__ import annotations

import json
import re

_WHITESPACE = re.compile(r"[ \t\n\r]*")  # JSON's four whitespace characters
_DECODER = json.JSONDecoder()
CALLRESULT = 3


class FrameTextError(ValueError):
    """The text is not a CALLRESULT frame ``[3, "<id>", {payload}]``."""


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip_whitespace(self) -> None:
        match = _WHITESPACE.match(self.text, self.pos)
        assert match is not None  # the pattern matches the empty string
        self.pos = match.end()

    def expect(self, char: str) -> None:
        self.skip_whitespace()
        if not self.text.startswith(char, self.pos):
            found = self.text[self.pos : self.pos + 1] or "end of text"
            raise FrameTextError(f"expected {char!r} at offset {self.pos}, found {found!r}")
        self.pos += 1

    def value(self) -> tuple[object, int, int]:
        """Decode the next JSON value; return it with its start and end offsets."""
        self.skip_whitespace()
        start = self.pos
        try:
            value, self.pos = _DECODER.raw_decode(self.text, start)
        except (ValueError, RecursionError) as exc:
            raise FrameTextError(f"no JSON value at offset {start}") from exc
        return value, start, self.pos


def result_payload_text(frame: str) -> str:
    """The payload of a CALLRESULT frame, exactly as it appears in ``frame``."""
    scan = _Scanner(frame)
    scan.expect("[")
    message_type, _, _ = scan.value()
    if type(message_type) is not int or message_type != CALLRESULT:
        raise FrameTextError(f"not a CALLRESULT: message type {message_type!r}")
    scan.expect(",")
    message_id, _, _ = scan.value()
    if not isinstance(message_id, str):
        raise FrameTextError("the message id is not a string")
    scan.expect(",")
    payload, start, end = scan.value()
    if not isinstance(payload, dict):
        raise FrameTextError("the CALLRESULT payload is not a JSON object")
    scan.expect("]")
    scan.skip_whitespace()
    if scan.pos != len(frame):
        raise FrameTextError(f"unexpected text after the frame at offset {scan.pos}")
    return frame[start:end]
