"""Which CALLs are waiting for an answer, per direction: pure bookkeeping.

A CALLRESULT or CALLERROR names only a message id; its action is that of the CALL it
answers. Charger and CSMS draw ids from separate spaces, so each direction has its own
table. Tables are bounded: a peer that never answers cannot grow them without limit.

A table may also time its calls: ``on_answered(action, seconds)`` hears of each answer,
``seconds`` after the CALL was recorded, on the injected ``clock``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

DEFAULT_CAPACITY = 256

#: Told the action of an answered CALL and how long its answer took.
OnAnswered = Callable[[str, float], None]


class PendingCalls:
    """Message id -> action for CALLs sent one way and not yet answered."""

    def __init__(
        self,
        capacity: int = DEFAULT_CAPACITY,
        *,
        on_answered: OnAnswered | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._capacity = capacity
        self._on_answered = on_answered
        self._clock = clock
        self._actions: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def sent(self, message_id: str, action: str) -> None:
        self._actions[message_id] = (action, self._clock())
        self._actions.move_to_end(message_id)
        if len(self._actions) > self._capacity:
            self._actions.popitem(last=False)  # the oldest was surely abandoned

    def answered(self, message_id: str) -> str | None:
        """Forget the call and return its action (None if it was unknown)."""
        pending = self._actions.pop(message_id, None)
        if pending is None:
            return None
        action, sent_at = pending
        if self._on_answered is not None:
            self._on_answered(action, self._clock() - sent_at)
        return action

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._actions

    def __len__(self) -> int:
        return len(self._actions)
