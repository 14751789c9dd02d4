"""1.6 transaction ids of sessions born offline: the proxy's id <-> the CSMS's id.

A charger that started a transaction while the CSMS was unreachable holds the id the
proxy gave it (:mod:`oye_relay.transaction_ids`). When the replayed StartTransaction
reaches the CSMS, the CSMS chooses its own id. From then on every frame naming that
transaction is rewritten: the proxy's id going up (MeterValues, StopTransaction, ...), the
CSMS's id coming down (RemoteStopTransaction, a TxProfile's ``transactionId``, ...).
Frames that name no mapped id are never touched, so transactions born online pass as they
are. Pure: the relay keeps the mapping on NATS KV (:mod:`oye_relay.offline_queue`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from oye_relay.transaction_ids import FIRST, LAST
from oye_shared.frames import Frame, MessageType

#: Mappings kept per charger; the oldest go first (their transactions ended long ago).
MAX_ENTRIES = 1000


class TransactionMap:
    def __init__(
        self, entries: Mapping[int, int] | None = None, *, any_charger_id: bool = False
    ) -> None:
        """``any_charger_id``: map every id the charger names, not only the proxy's own
        (a secondary backend's map: the charger's ids there come from the primary)."""
        self._only_ours = not any_charger_id
        self._to_csms: dict[int, int] = dict(entries or {})
        self._to_charger = {csms: ours for ours, csms in self._to_csms.items()}

    def __bool__(self) -> bool:
        return bool(self._to_csms)

    def add(self, ours: int, csms: int) -> None:
        self._to_csms.pop(ours, None)
        self._to_csms[ours] = csms
        self._to_charger[csms] = ours
        while len(self._to_csms) > MAX_ENTRIES:
            oldest = next(iter(self._to_csms))
            self._to_charger.pop(self._to_csms.pop(oldest), None)

    def csms_id(self, ours: int) -> int | None:
        return self._to_csms.get(ours)

    def to_json(self) -> bytes:
        return json.dumps({str(ours): csms for ours, csms in self._to_csms.items()}).encode()

    @classmethod
    def from_json(cls, data: bytes | None, *, any_charger_id: bool = False) -> TransactionMap:
        """The stored mapping; anything unreadable counts as none."""
        try:
            raw = json.loads(data) if data else {}
            entries = {int(ours): int(csms) for ours, csms in raw.items()}
        except (ValueError, TypeError, AttributeError):
            entries = {}
        return cls(entries, any_charger_id=any_charger_id)

    def towards_csms(self, frame: Frame, text: str) -> str:
        """A charger frame as the CSMS must see it (the CSMS's ids)."""
        if not self._to_csms or not frame.is_call:
            return text
        return _rewrite(frame, text, self._to_csms, only_ours=self._only_ours)

    def towards_charger(self, frame: Frame, text: str) -> str:
        """A CSMS CALL as the charger must see it (the proxy's ids)."""
        if not self._to_charger or frame.message_type is not MessageType.CALL:
            return text
        return _rewrite(frame, text, self._to_charger, only_ours=False)


def _rewrite(frame: Frame, text: str, ids: Mapping[int, int], *, only_ours: bool) -> str:
    payload, changed = _replace_ids(frame.payload, ids, only_ours)
    if not changed:
        return text
    return json.dumps(
        [frame.message_type, frame.message_id, frame.action, payload],
        separators=(",", ":"),
        ensure_ascii=False,
    )


def _replace_ids(value: Any, ids: Mapping[int, int], only_ours: bool) -> tuple[Any, bool]:
    """``value`` with every ``transactionId`` found in ``ids`` replaced, at any depth."""
    if isinstance(value, dict):
        changed = False
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key == "transactionId" and _mapped(item, ids, only_ours):
                out[key] = ids[item]
                changed = True
            else:
                out[key], inner = _replace_ids(item, ids, only_ours)
                changed = changed or inner
        return (out, True) if changed else (value, False)
    if isinstance(value, list):
        items = [_replace_ids(item, ids, only_ours) for item in value]
        if any(inner for _, inner in items):
            return [item for item, _ in items], True
    return value, False


def _mapped(item: Any, ids: Mapping[int, int], only_ours: bool) -> bool:
    if not isinstance(item, int) or isinstance(item, bool) or item not in ids:
        return False
    return not only_ours or FIRST <= item <= LAST
