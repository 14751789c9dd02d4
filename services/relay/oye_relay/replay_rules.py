"""What the offline replay keeps, how a kept message is sent again, and what an answer means.

Pure functions over frames; the queue (:mod:`oye_relay.offline_queue`) and the session do
the I/O. The CSMS needs, to bill and to keep the charger's history whole:

* 1.6: StartTransaction, StopTransaction, and MeterValues that name a transaction;
* 2.0.1 / 2.1: TransactionEvent;
* and, so that its picture of the charger is right before those arrive, the charger's
  BootNotification and StatusNotification calls made during the outage, in their place
  in the sequence (a CSMS may ignore traffic of a charger it has not seen boot, and the
  last status of each connector is what it shows its users).

Heartbeats, Authorize and the rest are answered and not kept: they carry nothing the
CSMS could still act on later.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from oye_shared.frames import Frame, MessageType

_ALWAYS_KEPT = frozenset({"BootNotification", "StatusNotification"})
_KEPT_16 = _ALWAYS_KEPT | {"StartTransaction", "StopTransaction"}
_KEPT_2X = _ALWAYS_KEPT | {"TransactionEvent"}


def is_kept(version: str, frame: Frame) -> bool:
    """Whether a charger CALL answered offline must reach the CSMS later."""
    action = frame.action
    if not frame.is_call or action is None:
        return False
    if version == "1.6":
        if action == "MeterValues":
            return isinstance(frame.payload, dict) and "transactionId" in frame.payload
        return action in _KEPT_16
    return action in _KEPT_2X


class Route(StrEnum):
    """Where a frame for a secondary backend goes now."""

    SEND = "send"  # to the backend
    KEEP = "keep"  # to its queue, replayed when it is back
    DROP = "drop"  # it is away and needs nothing of it later


def secondary_route(
    version: str, frame: Frame | None, *, from_charger: bool, connected: bool, catching_up: bool
) -> Route:
    """The same rule as the primary's, for a secondary that may be away or catching up.

    The charger's CALLs reach it live only once its queue is replayed (they wait behind the
    replay, in order: the kept ones join the queue); the rest of what it missed is dropped.
    Frames it needs answered (the charger's answers to its own CALLs) pass whenever it is
    connected. ``frame`` is None for a malformed frame.
    """
    if not from_charger:
        return Route.SEND if connected else Route.DROP
    if connected and not catching_up:
        return Route.SEND
    if frame is not None and is_kept(version, frame):
        return Route.KEEP
    return Route.DROP


def replay_text(version: str, frame: Frame, text: str) -> str:
    """The frame to send the CSMS: 2.0.1+ TransactionEvents say they were held back.

    ``offline: true`` tells the CSMS the event happened while the charger could not reach
    it (E04); ``seqNo`` and timestamps are kept as the charger wrote them.
    """
    if version == "1.6" or frame.action != "TransactionEvent":
        return text
    payload = frame.payload if isinstance(frame.payload, dict) else {}
    if payload.get("offline") is True:
        return text
    return serialize_call(frame.message_id, frame.action, {**payload, "offline": True})


def serialize_call(message_id: str, action: str, payload: Any) -> str:
    return json.dumps(
        [MessageType.CALL, message_id, action, payload], separators=(",", ":"), ensure_ascii=False
    )


class Verdict(StrEnum):
    TAKEN = "taken"  # the CSMS has it: next message
    REFUSED = "refused"  # the CSMS processed it and said no: an event, then next (no retry)
    RETRY = "retry"  # no answer or a CALLERROR: send it again (a bounded number of times)


@dataclass(frozen=True, slots=True)
class ReplayAnswer:
    verdict: Verdict
    reason: str = ""
    #: 1.6 StartTransaction: the transaction id the CSMS chose.
    csms_transaction_id: int | None = None


def judge_answer(action: str, answer: Frame | None) -> ReplayAnswer:
    """What the CSMS's answer (None: none in time) to a replayed CALL means.

    A CALLERROR may be passing trouble, so the message is sent again. An answer whose
    ``idTagInfo`` / ``idTokenInfo`` is not Accepted is final: the CSMS did process the
    message (a StartTransaction got its transaction id), so sending it again would only
    make a second transaction; it is reported instead.
    """
    if answer is None:
        return ReplayAnswer(Verdict.RETRY, "no answer in time")
    if answer.message_type is not MessageType.CALLRESULT:
        return ReplayAnswer(
            Verdict.RETRY, f"CALLERROR {answer.error_code}: {answer.error_description}"
        )
    payload = answer.payload if isinstance(answer.payload, dict) else {}
    transaction_id = payload.get("transactionId") if action == "StartTransaction" else None
    if not isinstance(transaction_id, int) or isinstance(transaction_id, bool):
        transaction_id = None
    info = payload.get("idTagInfo", payload.get("idTokenInfo"))
    status = info.get("status") if isinstance(info, dict) else None
    if status is not None and status != "Accepted":
        return ReplayAnswer(Verdict.REFUSED, f"the CSMS answered {status}", transaction_id)
    return ReplayAnswer(Verdict.TAKEN, csms_transaction_id=transaction_id)
