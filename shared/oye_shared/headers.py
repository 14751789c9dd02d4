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

import os
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


def now_rfc3339() -> str:
    return rfc3339(datetime.now(UTC))


def new_frame_id() -> str:
    """A unique, roughly time-ordered frame id (32 hex characters)."""
    # Time prefix keeps ids sortable by arrival; 8 random bytes keep them unique.
    return f"{datetime.now(UTC).strftime('%Y%m%d%H%M%S%f')[:16]}{os.urandom(8).hex()}"
