"""The offline replay of one charger connection: keep what the CSMS missed, send it later.

While a configured CSMS is unreachable, :meth:`Replayer.keep` appends the CALLs the CSMS
needs (:func:`~oye_relay.replay_rules.is_kept`) to the charger's queue before the session
answers them. When the CSMS is back, :meth:`Replayer.run` sends the queue one CALL at a
time; while it runs (:attr:`Replayer.active`) the session keeps answering new CALLs itself,
so they join the end of the queue and the CSMS gets everything in the charger's order.
Answers to replayed CALLs come back through :meth:`Replayer.take_answer` and never reach
the charger. The 1.6 transaction ids the CSMS gives are learned here and kept on NATS.

The same replayer catches a secondary backend up (``backend``: its name, on its frames and
events): its link keeps the queue and holds the charger's new CALLs behind the replay.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from websockets.exceptions import ConnectionClosed

from oye_relay.legs import Sender
from oye_relay.offline_queue import ChargerQueue, NatsTrouble, QueuedCall
from oye_relay.replay_rules import Verdict, is_kept, judge_answer, replay_text
from oye_relay.traffic import TrafficTap
from oye_relay.transaction_map import TransactionMap
from oye_shared.backends import PRIMARY
from oye_shared.bus import cancellation_checkpoint
from oye_shared.frames import Frame, FrameError, parse_frame
from oye_shared.subjects import Direction, EventKind

log = logging.getLogger(__name__)

Answer = tuple[Frame, str]


def _text(message: str | bytes) -> str:
    return message if isinstance(message, str) else message.decode(errors="replace")


class Replayer:
    def __init__(
        self,
        *,
        charge_point_id: str,
        queue: ChargerQueue | None,
        transaction_map: TransactionMap,
        tap: TrafficTap,
        version: Callable[[], str | None],
        call_timeout: float,
        attempts: int,
        backend: str | None = None,
    ) -> None:
        self.charge_point_id = charge_point_id
        #: None for the primary; a secondary's name, on its frames and events.
        self.backend = backend
        self._peer = f"backend {backend!r}" if backend else "the CSMS"
        self.queue = queue
        self.transaction_map = transaction_map
        self.tap = tap
        self._version = version
        self.call_timeout = call_timeout
        self.attempts = attempts
        #: True while the queue is replayed: the charger's CALLs are still answered here.
        self.active = False
        self._waiting: dict[str, tuple[str, asyncio.Future[Answer]]] = {}

    @property
    def backlog(self) -> int:
        return self.queue.depth if self.queue is not None else 0

    @property
    def oldest(self) -> float | None:
        return self.queue.oldest if self.queue is not None else None

    def keeps(self, frame: Frame) -> bool:
        """Whether the CSMS needs this CALL later (billing, history)."""
        return self.queue is not None and is_kept(self._version() or "2.0.1", frame)

    async def keep(self, frame: Frame, message: str | bytes, transaction_id: int | None) -> None:
        """Append a CALL the CSMS missed; returns once it is durable (or held, NATS away)."""
        assert self.queue is not None
        assert frame.action is not None
        await self.queue.append(
            _text(message), action=frame.action, offline_transaction_id=transaction_id
        )

    def connected(self) -> None:
        """The peer is there again: replay first if anything waits or is being appended
        (call before forwarding)."""
        self.active = self.queue is not None and (self.queue.depth > 0 or not self.queue.settled)

    def start(self, upstream: Sender) -> asyncio.Task[None] | None:
        if not self.active:
            return None
        return asyncio.create_task(self.run(upstream), name=f"replay {self.charge_point_id!r}")

    async def run(self, upstream: Sender) -> None:
        """Send the CSMS what it missed, one call at a time, then let the session forward."""
        assert self.queue is not None
        queue = self.queue
        log.info(
            "%r: replaying %d kept message(s) to %s", self.charge_point_id, queue.depth, self._peer
        )
        replayed = 0
        while True:
            begun = queue.appends_begun
            try:
                call = await queue.first()
                cancellation_checkpoint()  # nats-py may have swallowed a cancel: stop here
                if call is not None:
                    await self._replay_one(upstream, call)
                    await queue.remove(call)
                    replayed += 1
                    continue
            except ConnectionClosed:
                return  # the peer is gone again; the next connection replays the rest
            except (ConnectionError, *NatsTrouble) as exc:
                log.warning(
                    "%r: replay to %s waits for NATS (%r)", self.charge_point_id, self._peer, exc
                )
                await asyncio.sleep(1.0)
                continue
            finally:
                cancellation_checkpoint()
            if queue.settled and queue.appends_begun == begun:
                break  # empty, and nothing came meanwhile: forward from the next frame on
            await queue.wait_settled()
        self.active = False
        log.info(
            "%r: replay to %s done (%d message(s))", self.charge_point_id, self._peer, replayed
        )
        self.tap.event(EventKind.REPLAYED, messages=replayed, backend=self.backend or PRIMARY)

    def take_answer(self, frame: Frame, message: str | bytes) -> bool:
        """Take the CSMS's answer to a replayed CALL (the charger was answered long ago)."""
        if not frame.is_reply:
            return False
        waiting = self._waiting.get(frame.message_id)
        if waiting is None:
            return False
        action, waiter = waiting
        self.tap.frame(
            Direction.OFFLINE_REPLAY, message, frame, action=action, backend=self.backend
        )
        if not waiter.done():
            waiter.set_result((frame, _text(message)))
        return True

    async def _replay_one(self, upstream: Sender, call: QueuedCall) -> None:
        version = self._version() or "2.0.1"
        try:
            original = parse_frame(call.text)
        except FrameError as error:  # not ours: something else published on the subject
            self.tap.event(
                EventKind.REPLAY_REJECTED,
                reason=error.detail,
                frame=call.text,
                backend=self.backend or PRIMARY,
            )
            return
        action = original.action or ""
        for attempt in range(1, self.attempts + 1):
            # Rewritten at each attempt: an earlier replay may have taught the map an id.
            text = self.transaction_map.towards_csms(original, call.text)
            text = replay_text(version, parse_frame(text), text)
            answer, answer_text = await self._send(upstream, action, text)
            judged = judge_answer(action, answer)
            if judged.csms_transaction_id is not None and call.offline_transaction_id:
                await self._learn(call.offline_transaction_id, judged.csms_transaction_id)
            if judged.verdict is Verdict.TAKEN:
                return
            if judged.verdict is Verdict.REFUSED or attempt == self.attempts:
                break
            log.warning(
                "%r: %s did not take replayed %s (%s); attempt %d of %d",
                self.charge_point_id,
                self._peer,
                action,
                judged.reason,
                attempt,
                self.attempts,
            )
            await asyncio.sleep(min(0.5 * 2**attempt, 10.0))
        log.warning(
            "%r: replayed %s set aside for %s: %s",
            self.charge_point_id,
            action,
            self._peer,
            judged.reason,
        )
        self.tap.event(
            EventKind.REPLAY_REJECTED,
            backend=self.backend or PRIMARY,
            action=action,
            messageId=original.message_id,
            reason=judged.reason,
            attempts=attempt,
            queuedAt=call.time,
            frame=text,
            answer=answer_text,
        )

    async def _send(
        self, upstream: Sender, action: str, text: str
    ) -> tuple[Frame | None, str | None]:
        """Send one replayed CALL; its answer, or (None, None) when none came in time."""
        sent = parse_frame(text)
        waiter: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting[sent.message_id] = (action, waiter)
        self.tap.frame(Direction.OFFLINE_REPLAY, text, sent, backend=self.backend)
        try:
            await upstream.send(text)
            async with asyncio.timeout(self.call_timeout):
                return await waiter
        except TimeoutError:
            return None, None
        finally:
            self._waiting.pop(sent.message_id, None)

    async def _learn(self, ours: int, csms: int) -> None:
        log.info("%r: transaction %d is %d at %s", self.charge_point_id, ours, csms, self._peer)
        self.transaction_map.add(ours, csms)
        assert self.queue is not None
        try:
            await self.queue.save_transaction_map(self.transaction_map)
            cancellation_checkpoint()
        except (ConnectionError, *NatsTrouble) as exc:  # kept in memory; saved with the next
            log.warning("%r: could not save the transaction map: %r", self.charge_point_id, exc)
