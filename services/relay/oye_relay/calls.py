"""Which CALLs are waiting for an answer, per direction: pure bookkeeping.

A CALLRESULT or CALLERROR names only a message id; its action is that of the CALL it
answers. Charger and CSMS draw ids from separate spaces, so each direction has its own
table. Tables are bounded: a peer that never answers cannot grow them without limit.
"""

from __future__ import annotations

from collections import OrderedDict

DEFAULT_CAPACITY = 256


class PendingCalls:
    """Message id -> action for CALLs sent one way and not yet answered."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._actions: OrderedDict[str, str] = OrderedDict()

    def sent(self, message_id: str, action: str) -> None:
        self._actions[message_id] = action
        self._actions.move_to_end(message_id)
        if len(self._actions) > self._capacity:
            self._actions.popitem(last=False)  # the oldest was surely abandoned

    def answered(self, message_id: str) -> str | None:
        """Forget the call and return its action (None if it was unknown)."""
        return self._actions.pop(message_id, None)

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._actions

    def __len__(self) -> int:
        return len(self._actions)
