"""Message ids towards the charger when several backends share it (pure).

With secondary backends, two backends may use the same message id at the same moment.
Each backend CALL then reaches the charger under a proxy-unique id (:func:`new_lane_id`),
and the charger's answer goes back to that backend under the id it chose. Only the id
is replaced: the rest of the frame keeps its bytes.
"""

from __future__ import annotations

import json
import os
import re

LANE_ID_PREFIX = "oyb-"

# The message id: the first JSON string after the message type number.
_ID = re.compile(r'^(\s*\[\s*[2-6]\s*,\s*)("(?:[^"\\]|\\.)*")')


def new_lane_id() -> str:
    """``oyb-`` and 32 hex digits: 36 characters, the OCPP maximum."""
    return LANE_ID_PREFIX + os.urandom(16).hex()


def with_message_id(text: str, message_id: str) -> str:
    """``text`` (a well-formed OCPP-J frame) with its message id replaced."""
    found = _ID.match(text)
    if found is None:
        raise ValueError("not an OCPP-J frame with a message id")
    encoded = json.dumps(message_id, ensure_ascii=False)
    return text[: found.start(2)] + encoded + text[found.end(2) :]
