"""Backend CALLs towards the charger: the policy first, then the lane (pure bookkeeping).

A backend's CALL meets its policy (:func:`oye_shared.backends.decide`): answered or
rejected here (:func:`policy_reply`), or made into a :class:`~oye_relay.lane.LaneCall`.
With several backends every forwarded CALL gets a proxy-unique id on the way to the
charger, and :class:`BackendCalls` remembers whose it was and under which id, so the
charger's answer (even a late one) goes back to the backend that asked, with its own id.
With the primary alone, ids stay as the CSMS chose them (byte-exact forwarding).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from oye_relay.lane import LaneCall, Origin
from oye_relay.message_ids import new_lane_id, with_message_id
from oye_shared.backends import Policy
from oye_shared.default_answers import default_response
from oye_shared.frames import Frame, call_error_frame, call_result_frame
from oye_shared.schemas import NoResponseError, UnknownActionError, call_error_code

REMEMBERED = 256


@dataclass(frozen=True, slots=True)
class Route:
    """Where the charger's answer to one lane id goes."""

    source: str
    original_id: str
    action: str


def policy_reply(
    version: str,
    backend: str,
    decision: Policy,
    frame: Frame,
    answers: Mapping[str, Mapping[str, Any]],
    *,
    now: datetime | None = None,
) -> str:
    """The proxy's own answer to a CALL its backend's policy does not forward."""
    action = frame.action or ""
    if decision is Policy.REJECT:
        return call_error_frame(
            frame.message_id,
            call_error_code(version, "SecurityError"),
            f"OYE Proxy: backend {backend!r} may not send {action} to this charger "
            "(its policy rejects it)",
        )
    if action in answers:
        return call_result_frame(frame.message_id, dict(answers[action]))
    try:
        payload = default_response(version, action, now=now)
    except (UnknownActionError, NoResponseError):
        return call_error_frame(
            frame.message_id,
            call_error_code(version, "NotSupported"),
            f"OYE Proxy: {action} is not an OCPP {version} command; "
            f"backend {backend!r} is answered by the proxy",
        )
    return call_result_frame(frame.message_id, payload)


class BackendCalls:
    """Lane calls of the backends, and the routes of their answers."""

    def __init__(self, *, rewrite_ids: bool) -> None:
        #: True with secondaries: every backend CALL gets a proxy-unique id.
        self.rewrite_ids = rewrite_ids
        self._routes: OrderedDict[str, Route] = OrderedDict()

    def lane_call(
        self, source: str, frame: Frame, text: str | bytes, *, deadline: float
    ) -> LaneCall:
        """The lane call for a forwarded backend CALL."""
        assert frame.action is not None
        if not self.rewrite_ids:
            return LaneCall(
                message_id=frame.message_id,
                action=frame.action,
                text=text,
                origin=Origin.CSMS,
                deadline=deadline,
                source=source,
            )
        lane_id = new_lane_id()
        message = text if isinstance(text, str) else text.decode(errors="replace")
        self._routes[lane_id] = Route(source, frame.message_id, frame.action)
        if len(self._routes) > REMEMBERED:
            self._routes.popitem(last=False)
        return LaneCall(
            message_id=lane_id,
            action=frame.action,
            text=with_message_id(message, lane_id),
            origin=Origin.CSMS,
            deadline=deadline,
            source=source,
            original_id=frame.message_id,
        )

    def route(self, message_id: str) -> Route | None:
        """Whose answer this is (forgotten once taken); None: not a rewritten call's."""
        return self._routes.pop(message_id, None)
