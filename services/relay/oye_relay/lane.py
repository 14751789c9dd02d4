"""The backends -> charger lane: at most one CALL in flight, the rest waiting.

OCPP-J lets one side have one CALL outstanding. The CSMS's CALLs, every secondary
backend's and the owner's injected CALLs share this side, so they share one lane per
charger; no party can tell. Calls wait per source, in order, and the sources take turns
(round robin), so a backend that floods the lane delays only its own calls.
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
    #: Who asked: ``primary``, a secondary backend's name, or the origin's value.
    source: str = ""
    #: The id the source chose, when the charger gets another one (several backends).
    original_id: str | None = None
    answer: asyncio.Future[Reply | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def __post_init__(self) -> None:
        if not self.source:
            self.source = self.origin.value

    def settle(self, reply: Reply | None) -> None:
        if not self.answer.done():
            self.answer.set_result(reply)


class CallLane:
    """CALLs for one charger with one in flight: FIFO per source, sources in turn."""

    __slots__ = ("_waiting", "in_flight")

    def __init__(self) -> None:
        self.in_flight: LaneCall | None = None
        #: Sources with waiting calls, in turn order (next first): a dict keeps its order,
        #: and a lane that is idle (nearly always) then holds no deque at all.
        self._waiting: dict[str, deque[LaneCall]] = {}

    def submit(self, call: LaneCall) -> bool:
        """Queue a call; True when the lane was free and it must be sent now."""
        if self.in_flight is None and not self._waiting:
            self.in_flight = call
            return True
        waiting = self._waiting.get(call.source)
        if waiting is None:
            waiting = self._waiting[call.source] = deque()  # its turn comes after the others'
        waiting.append(call)
        return False

    def advance(self) -> LaneCall | None:
        """The in-flight call is over: take the next one (to be sent now), if any."""
        if not self._waiting:
            self.in_flight = None
            return None
        source = next(iter(self._waiting))
        waiting = self._waiting.pop(source)
        self.in_flight = waiting.popleft()
        if waiting:
            self._waiting[source] = waiting  # its next call waits for the others' turns
        return self.in_flight

    def withdraw(self, call: LaneCall) -> bool:
        """Take a call that has not been sent out of the queue."""
        waiting = self._waiting.get(call.source)
        if waiting is None or call not in waiting:
            return False
        waiting.remove(call)
        if not waiting:
            del self._waiting[call.source]
        return True

    def matches(self, message_id: str) -> LaneCall | None:
        call = self.in_flight
        return call if call is not None and call.message_id == message_id else None

    def drain(self) -> list[LaneCall]:
        """Every call still pending (the charger is gone)."""
        calls = [self.in_flight] if self.in_flight else []
        for waiting in self._waiting.values():
            calls.extend(waiting)
        self.in_flight = None
        self._waiting.clear()
        return calls

    @property
    def depth(self) -> int:
        return sum(map(len, self._waiting.values())) + (self.in_flight is not None)
