"""A secondary backend's 1.6 transaction ids: which id each charger transaction has there.

The charger knows a transaction by the id the primary (or the proxy, while the primary is
away) answered its StartTransaction with; a secondary answers the same StartTransaction
with an id of its own. Each StartTransaction waits here, by message id, for both answers;
once both are known the pair joins the backend's :class:`TransactionMap` (which the link
keeps on NATS). Waiters can await either answer: the link holds the charger's next CALLs
until the backend's id is known, and queues a StartTransaction with the charger's id.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field

from oye_relay.transaction_map import TransactionMap
from oye_shared.frames import Frame

#: StartTransactions awaiting their answers; older ones were surely abandoned.
STARTS = 16


@dataclass(slots=True)
class StartIds:
    """One StartTransaction of the charger: its transaction id for the charger and there."""

    charger_id: int | None = None
    backend_id: int | None = None
    learned: bool = False
    charger_answered: asyncio.Event = field(default_factory=asyncio.Event)
    backend_answered: asyncio.Event = field(default_factory=asyncio.Event)


def _transaction_id(frame: Frame) -> int | None:
    value = frame.payload.get("transactionId") if isinstance(frame.payload, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class BackendTransactions:
    def __init__(self, mapping: TransactionMap | None = None) -> None:
        #: The charger's transaction id -> the backend's (only where they differ).
        self.map = mapping or TransactionMap(any_charger_id=True)
        #: A pair was learned since the map was last saved.
        self.changed = False
        self._starts: OrderedDict[str, StartIds] = OrderedDict()

    def started(self, message_id: str) -> None:
        """The charger sent a StartTransaction with this message id."""
        self._starts[message_id] = StartIds()
        if len(self._starts) > STARTS:
            self._starts.popitem(last=False)

    def start(self, message_id: str) -> StartIds | None:
        return self._starts.get(message_id)

    def charger_answered(self, frame: Frame) -> tuple[int, int] | None:
        """The charger's answer to its CALL; the pair it completes, if a new one."""
        start = self._starts.get(frame.message_id)
        if start is None:
            return None
        start.charger_id = _transaction_id(frame)
        start.charger_answered.set()
        return self._learn(start)

    def backend_answered(self, frame: Frame) -> tuple[int, int] | None:
        """The backend's answer to the charger's StartTransaction; the pair, if a new one."""
        start = self._starts.get(frame.message_id)
        if start is None:
            return None
        start.backend_id = _transaction_id(frame)
        start.backend_answered.set()
        return self._learn(start)

    def release(self) -> None:
        """Nobody waits for an answer any more (the charger's session ends)."""
        for start in self._starts.values():
            start.charger_answered.set()
            start.backend_answered.set()

    def _learn(self, start: StartIds) -> tuple[int, int] | None:
        if start.learned or start.charger_id is None or start.backend_id is None:
            return None
        start.learned = True
        if start.charger_id == start.backend_id:
            return None
        self.map.add(start.charger_id, start.backend_id)
        self.changed = True
        return start.charger_id, start.backend_id
