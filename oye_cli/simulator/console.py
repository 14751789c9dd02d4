"""One readable line per frame, for the simulator's log. Pure.

::

    -> CALL BootNotification {"chargePointVendor":"OYE","chargePointModel":"Simulator"}
    <- RESULT BootNotification {"currentTime":"2025-06-01T12:00:00Z","interval":300,...}
    <- CALL GetConfiguration {"key":["HeartbeatInterval"]}
    -> RESULT GetConfiguration {"configurationKey":[{"key":"HeartbeatInterval",...}]}
    -> ERROR GetChargingProfiles NotImplemented: GetChargingProfiles is not a known action

``->`` is what the charger sent, ``<-`` what it received. A reply is labelled with the
action of the CALL it answers, remembered per direction (a bounded table: a reply whose
CALL was forgotten shows ``?``). Payloads are compact JSON, cut at ``width`` characters.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

from oye_cli.simulator.frame_log import Direction, RecordedFrame
from oye_shared.frames import MessageType

ARROWS: dict[Direction, str] = {"sent": "->", "received": "<-"}
_LABELS = {
    MessageType.CALL: "CALL",
    MessageType.CALLRESULT: "RESULT",
    MessageType.CALLERROR: "ERROR",
    MessageType.CALLRESULTERROR: "RESULTERROR",
    MessageType.SEND: "SEND",
}
_OTHER: dict[Direction, Direction] = {"sent": "received", "received": "sent"}


def compact(value: Any) -> str:
    """``value`` as compact JSON, non-ASCII kept readable."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def shorten(text: str, width: int | None) -> str:
    """``text`` cut to ``width`` characters (``None``: never), ``...`` marking the cut."""
    if width is None or len(text) <= width:
        return text
    return text[: max(width - 3, 0)] + "..."


class FrameDescriber:
    """Turns recorded frames into log lines; remembers CALL actions to label replies."""

    def __init__(self, *, width: int | None = 200, remember: int = 1000) -> None:
        self.width = width
        self._remember = remember
        self._actions: OrderedDict[tuple[Direction, str], str] = OrderedDict()

    def describe(self, recorded: RecordedFrame) -> str:
        arrow = ARROWS[recorded.direction]
        frame = recorded.frame
        if frame is None:
            return f"{arrow} MALFORMED {shorten(recorded.text, self.width)}"
        label = _LABELS[frame.message_type]
        if frame.message_type in (MessageType.CALL, MessageType.SEND):
            if frame.message_type is MessageType.CALL and frame.action:
                self._note(recorded.direction, frame.message_id, frame.action)
            body = compact(frame.payload)
            return f"{arrow} {label} {frame.action} {shorten(body, self.width)}"
        action = self._actions.pop((_OTHER[recorded.direction], frame.message_id), "?")
        if frame.message_type is MessageType.CALLRESULT:
            return f"{arrow} {label} {action} {shorten(compact(frame.payload), self.width)}"
        error = f"{frame.error_code}: {frame.error_description}"
        if frame.error_details:
            error += f" {compact(frame.error_details)}"
        return f"{arrow} {label} {action} {shorten(error, self.width)}"

    def _note(self, direction: Direction, message_id: str, action: str) -> None:
        self._actions[(direction, message_id)] = action
        while len(self._actions) > self._remember:
            self._actions.popitem(last=False)
