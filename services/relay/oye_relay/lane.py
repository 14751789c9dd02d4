"""The CSMS -> charger lane: at most one CALL in flight, the rest waiting in order.

OCPP-J lets one side have one CALL outstanding. The CSMS's CALLs and the owner's injected
CALLs share this side, so they share one lane per charger; neither party can tell.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from oye_shared.frames import Frame


class Origin(StrEnum):
    CSMS = "csms"
    INJECTED = "injected"


@dataclass(frozen=True, slots=True)
class Reply:
    """The charger's CALLRESULT or CALLERROR, parsed and as it arrived."""

    frame: Frame
    text: str


@dataclass(eq=False, slots=True)
class LaneCall:
    """A CALL towards the charger; ``answer`` resolves with its reply (None: timed out)."""

    message_id: str
    action: str
    text: str | bytes
    origin: Origin
    deadline: float  # on the loop's monotonic clock
    answer: asyncio.Future[Reply | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def settle(self, reply: Reply | None) -> None:
        if not self.answer.done():
            self.answer.set_result(reply)


class CallLane:
    """FIFO of CALLs for one charger with one in flight."""

    def __init__(self) -> None:
        self.in_flight: LaneCall | None = None
        self._waiting: deque[LaneCall] = deque()

    def submit(self, call: LaneCall) -> bool:
        """Queue a call; True when the lane was free and it must be sent now."""
        if self.in_flight is None and not self._waiting:
            self.in_flight = call
            return True
        self._waiting.append(call)
        return False

    def advance(self) -> LaneCall | None:
        """The in-flight call is over: take the next one (to be sent now), if any."""
        self.in_flight = self._waiting.popleft() if self._waiting else None
        return self.in_flight

    def withdraw(self, call: LaneCall) -> bool:
        """Take a call that has not been sent out of the queue."""
        try:
            self._waiting.remove(call)
        except ValueError:
            return False
        return True

    def matches(self, message_id: str) -> LaneCall | None:
        call = self.in_flight
        return call if call is not None and call.message_id == message_id else None

    def drain(self) -> list[LaneCall]:
        """Every call still pending (the charger is gone)."""
        calls = ([self.in_flight] if self.in_flight else []) + list(self._waiting)
        self.in_flight = None
        self._waiting.clear()
        return calls

    @property
    def depth(self) -> int:
        return len(self._waiting) + (self.in_flight is not None)
