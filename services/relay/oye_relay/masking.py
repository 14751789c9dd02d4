"""RFID id tags and tokens masked in what is published for monitoring (pure).

With ``OYE_MASK_ID_TAGS`` the frames on NATS (and so in the log) carry ``****`` plus the
tag's last two characters instead of the tag: enough to tell two cards apart in a
session's history, not enough to clone one. The peers get every frame unchanged.
"""

from __future__ import annotations

import json
from typing import Any

from oye_shared.frames import Frame, MessageType

#: 1.6 idTag / parentIdTag; 2.0.1+ idToken and groupIdToken objects carry ``idToken``.
_TAG_KEYS = frozenset({"idTag", "parentIdTag", "idToken"})


def mask_tag(tag: str) -> str:
    return "****" + tag[-2:] if len(tag) > 4 else "****"


def masked_frame(frame: Frame, text: str) -> str:
    """``text`` with every id tag masked; ``text`` itself when it names none."""
    payload = frame.payload if frame.message_type is not MessageType.CALLERROR else None
    masked, changed = _mask(payload)
    if not changed:
        return text
    if frame.message_type in (MessageType.CALL, MessageType.SEND):
        message: list[Any] = [frame.message_type, frame.message_id, frame.action, masked]
    else:
        message = [frame.message_type, frame.message_id, masked]
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def _mask(value: Any) -> tuple[Any, bool]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        changed = False
        for key, item in value.items():
            if key in _TAG_KEYS and isinstance(item, str):
                out[key], changed = mask_tag(item), True
            else:
                out[key], inner = _mask(item)
                changed = changed or inner
        return (out, True) if changed else (value, False)
    if isinstance(value, list):
        items = [_mask(item) for item in value]
        if any(inner for _, inner in items):
            return [item for item, _ in items], True
    return value, False
