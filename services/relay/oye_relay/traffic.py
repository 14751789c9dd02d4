"""What the relay tells NATS about each frame and each event: subjects, headers, bodies."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from oye_relay.calls import PendingCalls
from oye_relay.masking import masked_frame
from oye_relay.metrics import RelayMetrics
from oye_relay.publisher import Publisher
from oye_shared import headers as h
from oye_shared.backends import PRIMARY
from oye_shared.frames import Frame, FrameError, MessageType, parse_frame
from oye_shared.subjects import Direction, EventKind, Subjects

#: Frames of these directions concern the primary unless they name a secondary.
_PRIMARY_DIRECTIONS = frozenset(
    {Direction.UPSTREAM, Direction.DOWNSTREAM, Direction.PROXY_RESPONSE, Direction.OFFLINE_REPLAY}
)


def inspect(message: str | bytes) -> Frame | FrameError:
    """Parse a frame for routing and headers; a malformed frame is described, not raised."""
    try:
        return parse_frame(message)
    except FrameError as error:
        return error


@dataclass(slots=True)
class TrafficTap:
    """Publishes the frames and events of one charger connection, and counts them."""

    publisher: Publisher
    subjects: Subjects
    charge_point_id: str
    relay_id: str
    session_id: str
    subprotocol: str = ""
    metrics: RelayMetrics | None = None
    #: OYE_MASK_ID_TAGS: publish id tags masked (the peers get them unchanged).
    mask_id_tags: bool = False

    def frame(
        self,
        direction: Direction,
        message: str | bytes,
        parsed: Frame | FrameError,
        *,
        action: str | None = None,
        backend: str | None = None,
    ) -> None:
        """Publish one frame; ``backend`` names the secondary it went to or came from
        (the primary's frames say ``primary``; injections name none)."""
        frame_id = h.new_frame_id()
        headers = {
            h.DIRECTION: direction.value,
            h.CHARGE_POINT: self.charge_point_id,
            h.TIME: h.now_rfc3339(),
            h.FRAME_ID: frame_id,
            h.NATS_MSG_ID: frame_id,
            h.SUBPROTOCOL: self.subprotocol,
            h.RELAY: self.relay_id,
        }
        if backend is None and direction in _PRIMARY_DIRECTIONS:
            backend = PRIMARY
        if backend is not None:
            headers[h.BACKEND] = backend
        if isinstance(parsed, FrameError):
            headers[h.MESSAGE_TYPE] = h.MALFORMED
            headers[h.ERROR] = parsed.reason
            if parsed.message_id is not None:
                headers[h.MESSAGE_ID] = parsed.message_id
        else:
            headers[h.MESSAGE_TYPE] = parsed.message_type.name
            headers[h.MESSAGE_ID] = parsed.message_id
            if action := parsed.action or action:
                headers[h.ACTION] = action
        if isinstance(message, str):
            body = message.encode()
        else:
            body = message
            headers[h.BINARY] = "1"
        if self.mask_id_tags and isinstance(parsed, Frame):
            body = masked_frame(parsed, body.decode()).encode()
        self.publisher.publish(self.subjects.frames(self.charge_point_id, direction), body, headers)
        if self.metrics is not None:
            self.metrics.frame(direction, action)

    # Round trips and timeouts, for the metrics (no-ops without them).

    def csms_answered(self, action: str, seconds: float) -> None:
        """The CSMS answered the charger's ``action`` CALL after ``seconds``."""
        if self.metrics is not None:
            self.metrics.answered("charger", action, seconds)

    def charger_answered(self, action: str, seconds: float) -> None:
        """The charger answered the CSMS's ``action`` CALL after ``seconds``."""
        if self.metrics is not None:
            self.metrics.answered("csms", action, seconds)

    def lane_timed_out(self, origin: str) -> None:
        """A CALL towards the charger (``origin``: csms or injected) got no answer in time."""
        if self.metrics is not None:
            self.metrics.lane_timed_out(origin)

    def event(self, kind: EventKind, **details: Any) -> None:
        frame_id = h.new_frame_id()
        time = h.now_rfc3339()
        body = {
            "event": kind.value,
            "chargePointId": self.charge_point_id,
            "relay": self.relay_id,
            "sessionId": self.session_id,
            "time": time,
            **details,
        }
        headers = {
            h.CHARGE_POINT: self.charge_point_id,
            h.TIME: time,
            h.FRAME_ID: frame_id,
            h.NATS_MSG_ID: frame_id,
            h.RELAY: self.relay_id,
        }
        self.publisher.publish(
            self.subjects.events(self.charge_point_id, kind),
            json.dumps(body, separators=(",", ":")).encode(),
            headers,
        )


def track(
    parsed: Frame | FrameError, sent_by_peer: PendingCalls, answered_by_peer: PendingCalls
) -> str | None:
    """Keep the pending-call tables current for one frame; return the action of a reply.

    ``sent_by_peer`` holds CALLs this frame's sender made; ``answered_by_peer`` holds
    CALLs this frame's sender must answer.
    """
    if isinstance(parsed, FrameError):
        return None
    if parsed.message_type is MessageType.CALL and parsed.action is not None:
        sent_by_peer.sent(parsed.message_id, parsed.action)
        return None
    if parsed.message_type in (MessageType.CALLRESULT, MessageType.CALLERROR):
        return answered_by_peer.answered(parsed.message_id)
    return None
