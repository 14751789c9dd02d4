"""A charger the owner has not approved yet (``OYE_UNKNOWN_CHARGERS=pending``).

Its socket is accepted so that it shows up for the owner to approve, but nothing it says
reaches a CSMS: its BootNotification is answered Pending (it tries again every
:data:`RETRY_INTERVAL` seconds, as OCPP says), any other CALL gets a SecurityError. Once the
owner approves it, the relay closes this socket with 1012 (service restart) and the
charger's reconnection is admitted like any other.
"""

from __future__ import annotations

from datetime import UTC, datetime

from oye_relay.legs import OPEN, Leg
from oye_relay.traffic import TrafficTap, inspect
from oye_shared.frames import Frame, MessageType, call_error_frame, call_result_frame, parse_frame
from oye_shared.subjects import Direction

RETRY_INTERVAL = 30
APPROVED_CLOSE_CODE = 1012
WAITING = "this charger waits for the owner's approval"


def pending_answer(frame: Frame, now: datetime) -> str | None:
    """The proxy's answer to a CALL of a charger that is not approved yet (pure)."""
    if frame.message_type is not MessageType.CALL:
        return None  # replies go nowhere; a SEND is never answered
    if frame.action == "BootNotification":
        current_time = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        payload = {"currentTime": current_time, "interval": RETRY_INTERVAL, "status": "Pending"}
        return call_result_frame(frame.message_id, payload)
    return call_error_frame(frame.message_id, "SecurityError", WAITING)


async def hold_pending(charger: Leg, tap: TrafficTap) -> None:
    """Answer the charger as Pending until its socket closes."""

    transport = charger.transport

    def writable_again() -> None:
        if charger.state is OPEN:
            transport.resume_reading()

    def received(message: str | bytes) -> None:
        parsed = inspect(message)
        tap.frame(Direction.UPSTREAM, message, parsed)
        if not isinstance(parsed, Frame):
            return
        answer = pending_answer(parsed, datetime.now(UTC))
        if answer is not None:
            tap.frame(Direction.PROXY_RESPONSE, answer, parse_frame(answer), action=parsed.action)
            charger.write(answer)
            if charger.paused:  # it does not read its answers: stop reading it meanwhile
                transport.pause_reading()
                charger.notify_writable(writable_again)

    charger.attach(received)
    await charger.wait_closed()
