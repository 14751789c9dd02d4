"""The ``Oye-*`` NATS headers carried by every published frame.

=====================  =========================================================
Header                 Value
=====================  =========================================================
``Oye-Direction``      a :class:`~oye_shared.subjects.Direction`
``Oye-Charge-Point``   the charge point id as the charger gave it (decoded)
``Oye-Time``           arrival time, UTC, RFC 3339 with microseconds
``Oye-Frame-Id``       unique per frame (also ``Nats-Msg-Id`` for deduplication)
``Oye-Subprotocol``    the negotiated subprotocol, e.g. ``ocpp1.6``
``Oye-Relay``          the relay instance that saw the frame
``Oye-Message-Type``   CALL, CALLRESULT, CALLERROR, CALLRESULTERROR, SEND or
                       MALFORMED
``Oye-Message-Id``     the OCPP message id, when it could be read
``Oye-Action``         the action; for a reply, the action of the call it answers
``Oye-Error``          for MALFORMED frames: why (see ``frames.FRAME_ERROR_REASONS``)
``Oye-Binary``         ``1`` when the frame arrived as a binary WebSocket message
``Oye-Backend``        which backend the frame went to or came from: ``primary``
                       (the CSMS) or a secondary backend's name; absent on frames
                       between the proxy and the charger alone (injections)
``Oye-Offline-Tx-Id``  on a queued 1.6 StartTransaction: the transaction id the
                       proxy gave the charger (the offline replay queue only)
=====================  =========================================================
"""

from __future__ import annotations

import itertools
import os
import time
from datetime import UTC, datetime

DIRECTION = "Oye-Direction"
CHARGE_POINT = "Oye-Charge-Point"
TIME = "Oye-Time"
FRAME_ID = "Oye-Frame-Id"
SUBPROTOCOL = "Oye-Subprotocol"
RELAY = "Oye-Relay"
MESSAGE_TYPE = "Oye-Message-Type"
MESSAGE_ID = "Oye-Message-Id"
ACTION = "Oye-Action"
ERROR = "Oye-Error"
BINARY = "Oye-Binary"
OFFLINE_TRANSACTION_ID = "Oye-Offline-Tx-Id"
BACKEND = "Oye-Backend"
NATS_MSG_ID = "Nats-Msg-Id"

MALFORMED = "MALFORMED"


def rfc3339(moment: datetime) -> str:
    """UTC time as ``2025-06-01T12:00:00.000000Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# Every frame gets a time and an id: both are made without strftime or a random-number
# syscall per frame (they were 14 % of the relay's CPU, docs/PERFORMANCE.md). The text of
# the current second is made once per second; ids are a time prefix, a random per-process
# part and a counter.
_PROCESS_PART = os.urandom(4).hex()
_counter = itertools.count()
_second: tuple[int, str, str] = (-1, "", "")


def _clock() -> tuple[str, str, int]:
    """(``YYYYmmddHHMMSS``, ``YYYY-mm-ddTHH:MM:SS``, microseconds) of now, UTC."""
    global _second
    seconds, micros = divmod(time.time_ns() // 1000, 1_000_000)
    if seconds != _second[0]:
        parts = time.gmtime(seconds)
        _second = (
            seconds,
            time.strftime("%Y%m%d%H%M%S", parts),
            time.strftime("%Y-%m-%dT%H:%M:%S", parts),
        )
    return _second[1], _second[2], micros


def now_rfc3339() -> str:
    """Now, as :func:`rfc3339` writes it."""
    _, second, micros = _clock()
    return f"{second}.{micros:06d}Z"


def new_frame_id() -> str:
    """A unique, roughly time-ordered frame id (32 hex characters)."""
    return new_frame_stamp()[0]


def new_frame_stamp() -> tuple[str, str]:
    """A new frame id and now (as :func:`now_rfc3339`), from one reading of the clock:
    every published frame needs both."""
    compact, second, micros = _clock()
    # 16 digits of time (to 10 ms) keep ids sortable by arrival; 8 hex characters of this
    # process and 8 of a counter keep them unique.
    frame_id = f"{compact}{micros // 10_000:02d}{_PROCESS_PART}{next(_counter) & 0xFFFFFFFF:08x}"
    return frame_id, f"{second}.{micros:06d}Z"
