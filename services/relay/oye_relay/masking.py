"""Secrets, and optionally RFID id tags, masked in what is published for monitoring (pure).

Passwords are always masked (``****``) in the frames on NATS, and so in the log and the
dashboard: the charger's own Basic auth password as OCPP sets and reads it (1.6
``AuthorizationKey`` in ChangeConfiguration / GetConfiguration, 2.0.1
``SecurityCtrlr.BasicAuthPassword`` in SetVariables / GetVariables / NotifyReport),
SetNetworkProfile's APN and VPN passwords and VPN key, any other field named like a
password (a vendor's DataTransfer), and the password of a ``scheme://user:password@host``
URL (UpdateFirmware, GetDiagnostics and GetLog upload to such URLs).

With ``OYE_MASK_ID_TAGS`` id tags are masked too: ``****`` plus the tag's last two
characters, enough to tell two cards apart in a session's history, not enough to clone
one. The peers get every frame unchanged.
"""

from __future__ import annotations

import json
import re
from typing import Any

from oye_shared.frames import Frame, MessageType

MASK = "****"
#: 1.6 idTag / parentIdTag; 2.0.1+ idToken and groupIdToken objects carry ``idToken``.
_TAG_KEYS = frozenset({"idTag", "parentIdTag", "idToken"})
#: Configuration keys / variables whose value is the charger's password (case-insensitive:
#: 1.6 keys are CiString).
_PASSWORD_SETTINGS = frozenset({"authorizationkey", "basicauthpassword"})
#: The password of a URL's user information. The scheme's length is bounded: unbounded, a
#: long run of letters would cost a scan from each of its positions (quadratic time).
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]{0,31}://[^/?#@\s:]*:)[^/?#@\s]*@")
#: Deeper than this, a value is masked whole: no OCPP message nests so deep, and a peer
#: must not be able to exhaust the stack of the code that masks its frames.
MAX_DEPTH = 32


def may_hold_secret(body: bytes) -> bool:
    """Whether a frame's text may hold a secret that :func:`masked_frame` would mask."""
    # The bytes without which a frame cannot hold one of those secrets, tested for every
    # published frame (a ``\u`` escape could spell any of them; a URL's password needs
    # "://" and "@"). Plain ``in`` tests: a generator over the hints cost three times more.
    lowered = body.lower()
    return (
        b"password" in lowered
        or b"authorizationkey" in lowered
        or b"\\u" in lowered
        or (b"://" in body and b"@" in body)
    )


def url_without_password(url: str) -> str:
    """``url`` with the password of its user information, if any, masked (for logs)."""
    return _URL_PASSWORD.sub(rf"\g<1>{MASK}@", url)


def mask_tag(tag: str) -> str:
    return MASK + tag[-2:] if len(tag) > 4 else MASK


def masked_frame(frame: Frame, text: str, *, id_tags: bool = False) -> str:
    """``text`` with every secret (and with ``id_tags`` every id tag) masked; ``text``
    itself when it holds none."""
    payload = frame.payload if frame.message_type is not MessageType.CALLERROR else None
    masked, changed = _mask(payload, id_tags)
    if not changed:
        return text
    if frame.message_type in (MessageType.CALL, MessageType.SEND):
        message: list[Any] = [frame.message_type, frame.message_id, frame.action, masked]
    else:
        message = [frame.message_type, frame.message_id, masked]
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def _mask(value: Any, id_tags: bool, *, secret: bool = False, depth: int = 0) -> tuple[Any, bool]:
    """``value`` masked, and whether anything changed; ``secret``: all of it is one."""
    if isinstance(value, dict | list) and depth >= MAX_DEPTH:
        return MASK, True
    if isinstance(value, dict):
        return _mask_object(value, id_tags, secret=secret, depth=depth)
    if isinstance(value, list):
        items = [_mask(item, id_tags, secret=secret, depth=depth + 1) for item in value]
        if any(inner for _, inner in items):
            return [item for item, _ in items], True
        return value, False
    if isinstance(value, str):
        if secret:
            return MASK, True
        if "@" in value and "://" in value:
            hidden = url_without_password(value)
            return hidden, hidden != value
        return value, False
    if secret and isinstance(value, int | float) and not isinstance(value, bool):
        return MASK, True
    return value, False


def _mask_object(
    value: dict[str, Any], id_tags: bool, *, secret: bool, depth: int
) -> tuple[Any, bool]:
    secret_fields = _secret_fields(value)
    out: dict[str, Any] = {}
    changed = False
    for key, item in value.items():
        if id_tags and key in _TAG_KEYS and isinstance(item, str):
            out[key], inner = mask_tag(item), True
        elif key == "variableAttribute" and key in secret_fields and isinstance(item, list):
            out[key], inner = _masked_attributes(item)
        else:
            hidden = secret or key in secret_fields or "password" in key.lower()
            out[key], inner = _mask(item, id_tags, secret=hidden, depth=depth + 1)
        changed = changed or inner
    return (out, True) if changed else (value, False)


def _masked_attributes(attributes: list[Any]) -> tuple[list[Any], bool]:
    """NotifyReport's VariableAttributes of a password: each value masked, the rest kept."""
    out = [
        {**item, "value": MASK}
        if isinstance(item, dict) and item.get("value") is not None
        else item
        for item in attributes
    ]
    return out, out != attributes


def _secret_fields(value: dict[str, Any]) -> frozenset[str]:
    """The fields of an object that hold a secret because of what its other fields say."""
    key = value.get("key")
    if isinstance(key, str) and key.lower() in _PASSWORD_SETTINGS:
        return frozenset({"value"})  # 1.6 ChangeConfiguration, a GetConfiguration KeyValue
    variable = value.get("variable")
    if isinstance(variable, dict):
        name = variable.get("name")
        if isinstance(name, str) and name.lower() in _PASSWORD_SETTINGS:
            # 2.0.1 SetVariableData / GetVariableResult; NotifyReport's ReportData.
            return frozenset({"attributeValue", "variableAttribute"})
    if "password" in value and "server" in value:
        return frozenset({"key"})  # 2.0.1 VPNType: its key is a secret as well
    return frozenset()
