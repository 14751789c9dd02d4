"""What the relay tells NATS about each frame and each event: subjects, headers, bodies."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from oye_relay.calls import PendingCalls
from oye_relay.masking import masked_frame, may_hold_secret
from oye_relay.metrics import RelayMetrics
from oye_relay.publisher import Publisher
from oye_relay.wire import HEADER_START, header_line, hpub
from oye_shared import headers as h
from oye_shared.backends import PRIMARY
from oye_shared.frames import Frame, FrameError, MessageType, parse_frame
from oye_shared.subjects import Direction, EventKind, Subjects

#: Frames of these directions concern the primary unless they name a secondary.
_PRIMARY_DIRECTIONS = frozenset(
    {Direction.UPSTREAM, Direction.DOWNSTREAM, Direction.PROXY_RESPONSE, Direction.OFFLINE_REPLAY}
)
# Header lines that take a value from a small fixed set, made once.
_PRIMARY_LINE = header_line(h.BACKEND, PRIMARY)
_MALFORMED_LINE = header_line(h.MESSAGE_TYPE, h.MALFORMED)
_TYPE_LINES = {kind: header_line(h.MESSAGE_TYPE, kind.name) for kind in MessageType}
_BINARY_LINE = header_line(h.BINARY, "1")


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
    #: OYE_MASK_ID_TAGS: publish id tags masked, as passwords always are (the peers get
    #: them unchanged).
    mask_id_tags: bool = False
    #: Per direction, made on first use: the subject and the header lines that stay the
    #: same for the whole session (every frame used to rebuild them).
    _per_direction: dict[Direction, tuple[str, str]] = field(
        default_factory=dict, init=False, repr=False
    )

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
        known = self._per_direction.get(direction)
        subject, fixed = known if known is not None else self._session_lines(direction)
        frame_id, now = h.new_frame_stamp()
        # Every value not made here (message id, action, error, backend) goes through
        # header_line: a CR or LF from a peer must never start a header line of its own.
        lines = [
            fixed,
            f"{h.TIME}: {now}\r\n{h.FRAME_ID}: {frame_id}\r\n{h.NATS_MSG_ID}: {frame_id}\r\n",
        ]
        if backend is None:
            if direction in _PRIMARY_DIRECTIONS:
                lines.append(_PRIMARY_LINE)
        else:
            lines.append(header_line(h.BACKEND, backend))
        if isinstance(parsed, FrameError):
            lines.append(_MALFORMED_LINE)
            lines.append(header_line(h.ERROR, parsed.reason))
            if parsed.message_id is not None:
                lines.append(header_line(h.MESSAGE_ID, parsed.message_id))
        else:
            lines.append(_TYPE_LINES[parsed.message_type])
            lines.append(header_line(h.MESSAGE_ID, parsed.message_id))
            if action := parsed.action or action:
                lines.append(header_line(h.ACTION, action))
        if isinstance(message, str):
            body = message.encode()
        else:
            body = message
            lines.append(_BINARY_LINE)
        if isinstance(parsed, Frame) and (self.mask_id_tags or may_hold_secret(body)):
            # Only the published copy: the peer gets ``message`` as it was sent.
            body = masked_frame(parsed, body.decode(), id_tags=self.mask_id_tags).encode()
        lines.append("\r\n")
        self.publisher.publish_command(hpub(subject, "".join(lines).encode(), body))
        if self.metrics is not None:
            self.metrics.frame(direction, action)

    def _session_lines(self, direction: Direction) -> tuple[str, str]:
        """The subject of ``direction`` and the start of its frames' header block."""
        known = self._per_direction[direction] = (
            self.subjects.frames(self.charge_point_id, direction),
            HEADER_START
            + header_line(h.DIRECTION, direction.value)
            + header_line(h.CHARGE_POINT, self.charge_point_id)
            + header_line(h.SUBPROTOCOL, self.subprotocol)
            + header_line(h.RELAY, self.relay_id),
        )
        return known

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
        frame_id, time = h.new_frame_stamp()
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
