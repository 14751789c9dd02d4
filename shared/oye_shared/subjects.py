"""NATS subject names, and the codec that turns a charge point id into one subject token.

A charge point id is untrusted text: it may hold '.', '*', '>' or whitespace, which NATS
reads as token separators or wildcards. :func:`encode_token` percent-encodes exactly those
characters, control characters and '%' itself, so the mapping is reversible and every
other character (letters, digits, '-', '_', ':', non-ASCII, ...) stays readable::

    encode_token("RDAM.12 3*")  == "RDAM%2E12%203%2A"
    decode_token("RDAM%2E12%203%2A") == "RDAM.12 3*"

Subjects (``prefix`` is ``OYE_SUBJECT_PREFIX``, ``oye`` by default):

=====================================  ===============================================
``{prefix}.frames.{cp}.{DIRECTION}``   every OCPP frame, body = exact frame text
``{prefix}.events.{cp}.{kind}``        connection life, JSON body
``{prefix}.inject.{cp}``               request/reply: inject a CALL into a charger
``{prefix}.logs.query``                request/reply: query the stored log
``{prefix}.replay.{cp}``               billing messages kept while the CSMS was
                                       unreachable, in arrival order (its own stream)
``{prefix}.replay.{cp}.{backend}``     the same, for a secondary backend that was down
=====================================  ===============================================
"""

from __future__ import annotations

import base64
import re
from enum import StrEnum

_ESCAPE = re.compile(r"[%.*>\s\x00-\x1f\x7f]")
_UNESCAPE = re.compile(r"%([0-9A-F]{2})")


class Direction(StrEnum):
    """Which way a frame went, or who produced it."""

    UPSTREAM = "UPSTREAM"  # charger -> CSMS
    DOWNSTREAM = "DOWNSTREAM"  # CSMS -> charger
    INJECTION_REQUEST = "INJECTION_REQUEST"  # proxy -> charger, on behalf of the owner
    INJECTION_RESPONSE = "INJECTION_RESPONSE"  # charger -> proxy, never forwarded
    PROXY_RESPONSE = "PROXY_RESPONSE"  # proxy -> charger, answered in the CSMS's place
    OFFLINE_REPLAY = "OFFLINE_REPLAY"  # kept while the CSMS was away, replayed; and its answers


class EventKind(StrEnum):
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    REPLACED = "replaced"
    UPSTREAM_UP = "upstream_up"
    UPSTREAM_DOWN = "upstream_down"
    REPLAYED = "replayed"  # the offline queue reached the CSMS
    REPLAY_REJECTED = "replay_rejected"  # a queued message the CSMS would not take
    ADMISSION_REFUSED = "admission_refused"  # a charger refused at the handshake
    PENDING = "pending"  # an unknown charger held until the owner approves it
    BACKEND_UP = "backend_up"  # a secondary backend connected (``backend``: its name)
    BACKEND_DOWN = "backend_down"  # a secondary backend dropped or is unreachable


def _escape_char(match: re.Match[str]) -> str:
    return "".join(f"%{byte:02X}" for byte in match.group().encode())


def encode_token(charge_point_id: str) -> str:
    """Encode a charge point id as one NATS subject token (reversible)."""
    if not charge_point_id:
        raise ValueError("a charge point id cannot be empty")
    return _ESCAPE.sub(_escape_char, charge_point_id)


def decode_token(token: str) -> str:
    """Invert :func:`encode_token`. Raises ValueError on a token it could not have made."""
    if "%" not in token:
        return token
    out = bytearray()
    pos = 0
    for match in _UNESCAPE.finditer(token):
        out += token[pos : match.start()].encode()
        out.append(int(match.group(1), 16))
        pos = match.end()
    out += token[pos:].encode()
    return out.decode()


class Subjects:
    """The subjects of one deployment, built from its prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def frames(self, charge_point_id: str, direction: Direction) -> str:
        return f"{self.prefix}.frames.{encode_token(charge_point_id)}.{direction}"

    def events(self, charge_point_id: str, kind: EventKind | str) -> str:
        return f"{self.prefix}.events.{encode_token(charge_point_id)}.{kind}"

    def inject(self, charge_point_id: str) -> str:
        return f"{self.prefix}.inject.{encode_token(charge_point_id)}"

    def replay(self, charge_point_id: str, backend: str | None = None) -> str:
        """The primary's queue (``backend`` None), or a secondary's one token deeper: a
        filter on one never matches the other (backend names are single tokens)."""
        subject = f"{self.prefix}.replay.{encode_token(charge_point_id)}"
        return f"{subject}.{backend}" if backend else subject

    @property
    def all_replay(self) -> str:
        return f"{self.prefix}.replay.>"

    @property
    def all_frames(self) -> str:
        return f"{self.prefix}.frames.>"

    @property
    def all_events(self) -> str:
        return f"{self.prefix}.events.>"

    @property
    def logs_query(self) -> str:
        return f"{self.prefix}.logs.query"

    def charge_point_of(self, subject: str) -> str:
        """The charge point id named by a frames/events/inject subject."""
        parts = subject.split(".")
        prefix_len = len(self.prefix.split("."))
        return decode_token(parts[prefix_len + 1])


def kv_key(charge_point_id: str) -> str:
    """A NATS KV key for a charge point id (KV keys allow only ``[-/_=.a-zA-Z0-9]``)."""
    return base64.urlsafe_b64encode(charge_point_id.encode()).decode()


def kv_key_decode(key: str) -> str:
    return base64.urlsafe_b64decode(key.encode()).decode()
