"""One secondary backend of one charger: its own connection, reconnect, queue and catch-up.

A :class:`SecondaryLink` receives a copy of every CALL the charger sends, and answers to
the CALLs it made itself; it never delays the charger or the primary: frames go into a
bounded outbox that the link's own task (the feeder) takes from. Its answers to the
charger's CALLs are published and swallowed; its CALLs go to the session (``on_call``),
which applies the backend's policy and the lane.

While it is unreachable, the CALLs it will need later (the primary's rule,
:func:`~oye_relay.replay_rules.is_kept`: boot and status notifications, transactions) go to
its own durable queue, ``{prefix}.replay.{cp}.{backend}`` in JetStream (in memory, in
order, while NATS is away); a 1.6 StartTransaction is stored with the transaction id the
charger was given. When it is back, the :class:`~oye_relay.replayer.Replayer` sends the
queue one CALL at a time, waiting for each answer, and the charger's new CALLs wait behind
it; the primary never notices. 1.6 transaction ids: the backend's own id for the charger's
transaction (learned live or from the replayed StartTransaction) is kept in KV
``{P}_txmap`` under its name, so a relay restart or a reconnect keeps rewriting them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Awaitable, Callable

from websockets.exceptions import ConnectionClosed

from oye_relay.backend_transactions import BackendTransactions
from oye_relay.calls import PendingCalls
from oye_relay.leg_reader import LegReader
from oye_relay.legs import Leg
from oye_relay.offline_queue import NATS_TIMEOUT, ChargerQueue, NatsTrouble, ReplayStore
from oye_relay.replay_rules import Route, secondary_route
from oye_relay.replayer import Replayer
from oye_relay.traffic import TrafficTap, inspect
from oye_relay.transaction_map import TransactionMap
from oye_relay.upstream import (
    Backoff,
    UpstreamOptions,
    UpstreamRefused,
    UpstreamUnreachable,
    open_upstream,
)
from oye_shared.backends import BackendAuth, SecondaryBackend
from oye_shared.bus import cancellation_checkpoint
from oye_shared.frames import Frame
from oye_shared.subjects import Direction, EventKind

log = logging.getLogger(__name__)

OUTBOX = 1000
#: How long a 1.6 StartTransaction waits for its answer (the backend's, to learn its id
#: before the charger's next CALLs name it; the charger's, before it is queued).
START_ANSWER_TIMEOUT = 10.0
#: How long a charger's session end waits for the outbox to reach the backend or its queue.
FLUSH_DEADLINE = 2.0

OnCall = Callable[["SecondaryLink", Frame, str], Awaitable[None]]


def authorization_for(
    backend: SecondaryBackend, charge_point_id: str, charger: str | None
) -> str | None:
    """The ``Authorization`` header this backend gets."""
    if backend.auth is BackendAuth.FORWARD:
        return charger
    if backend.auth is BackendAuth.BASIC:
        user = backend.username or charge_point_id
        token = base64.b64encode(f"{user}:{backend.password or ''}".encode()).decode()
        return f"Basic {token}"
    return None


def _text(message: str | bytes) -> str:
    return message if isinstance(message, str) else message.decode(errors="replace")


#: What the outbox holds: a frame and whether the charger sent it (else it is an answer to
#: the backend's own CALL); None only wakes the feeder (a transaction id to save).
_Item = tuple[str | bytes, bool] | None


class SecondaryLink:
    def __init__(
        self,
        *,
        backend: SecondaryBackend,
        options: UpstreamOptions,
        charge_point_id: str,
        subprotocol: str | None,
        version: Callable[[], str | None],
        authorization: str | None,
        user_agent: str | None,
        backoff_max: float,
        tap: TrafficTap,
        on_call: OnCall,
        on_state: Callable[[], None],
        store: Callable[[], ReplayStore | None] = lambda: None,
        call_timeout: float = 30.0,
        replay_attempts: int = 3,
    ) -> None:
        self.backend = backend
        self.name = backend.name
        self.options = options
        self.charge_point_id = charge_point_id
        self.subprotocol = subprotocol
        self._version = version
        self.authorization = authorization_for(backend, charge_point_id, authorization)
        self.user_agent = user_agent
        self.backoff_max = backoff_max
        self.tap = tap
        self.on_call = on_call
        self.on_state = on_state
        self._store = store
        #: "connecting" (never connected yet), "up" or "down".
        self.state = "connecting"
        self.connection: Leg | None = None
        self._outbox: asyncio.Queue[_Item] = asyncio.Queue(OUTBOX)
        self._feeding = False  # the feeder runs: a session end may wait for the outbox
        self._ending = False
        # Frames wait for the first connection attempt: a backend that is up at the
        # charger's connect gets them live, without a detour through its queue.
        self._first_attempt = asyncio.Event()
        self.charger_calls = PendingCalls()  # the charger's CALLs it must answer
        self.transactions = BackendTransactions()
        self.queue = ChargerQueue(
            charge_point_id, store, subprotocol=subprotocol or "", backend=self.name
        )
        self.replayer = Replayer(
            charge_point_id=charge_point_id,
            queue=self.queue,
            transaction_map=self.transactions.map,
            tap=tap,
            version=version,
            call_timeout=call_timeout,
            attempts=replay_attempts,
            backend=self.name,
        )
        self.dropped = 0

    @property
    def version(self) -> str:
        return self._version() or "2.0.1"

    # What the session hands over; never blocks.

    def charger_sent(self, message: str | bytes, frame: Frame) -> None:
        """A CALL (or SEND) of the charger: this backend gets it too, now or later. (The
        session published it once; publishing it again per backend would count it twice.)"""
        if frame.action is not None and frame.is_call:
            self.charger_calls.sent(frame.message_id, frame.action)
        if frame.action == "StartTransaction":
            self.transactions.started(frame.message_id)
        self._post((message, True))

    def send(
        self, message: str, frame: Frame, direction: Direction, *, action: str | None = None
    ) -> None:
        """A frame for this backend: the charger's answer to its CALL (``UPSTREAM``), or the
        proxy's (``PROXY_RESPONSE``); published here, dropped while it is down."""
        self.tap.frame(direction, message, frame, action=action, backend=self.name)
        if self.connection is not None:
            self._post((message, False))

    def charger_answered(self, frame: Frame) -> None:
        """The charger got the answer to its CALL ``frame.message_id`` (from the primary
        or the proxy): learn its 1.6 transaction id."""
        self._learned(self.transactions.charger_answered(frame))

    @property
    def transaction_map(self) -> TransactionMap:
        return self.transactions.map

    def towards_charger(self, frame: Frame, text: str) -> str:
        """This backend's CALL with its 1.6 transaction ids as the charger knows them."""
        return self.transaction_map.towards_charger(frame, text) if self.transaction_map else text

    async def flush(self) -> None:
        """The charger's session ends: let what the outbox holds reach the backend or its
        queue first (bounded; the charger answers nothing more, so nothing else waits)."""
        self._ending = True
        self._first_attempt.set()
        self.transactions.release()
        if not self._feeding:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FLUSH_DEADLINE):
                await self._outbox.join()

    def _post(self, item: _Item) -> None:
        try:
            self._outbox.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning(
                "%r: backend %r does not keep up; a frame for it was dropped",
                self.charge_point_id,
                self.name,
            )

    def _learned(self, pair: tuple[int, int] | None) -> None:
        if pair is None:
            return
        log.info("%r: transaction %d is %d at backend %r", self.charge_point_id, *pair, self.name)
        with contextlib.suppress(asyncio.QueueFull):  # full: it saves after the next frame
            self._outbox.put_nowait(None)  # the feeder saves the map, off the charger's path

    # The connection.

    async def run(self) -> None:
        """Keep the backend connected until cancelled; never ends the charger's session."""
        await self._load()
        feeder = asyncio.create_task(self._feed(), name=f"feed {self.name}")
        self._feeding = True
        backoff = Backoff(maximum=self.backoff_max)
        try:
            while True:
                connection = await self._connect(backoff)
                await self._serve(connection)
                self._set_state("down")
                log.warning(
                    "%r: backend %r dropped (%s); reconnecting",
                    self.charge_point_id,
                    self.name,
                    connection.close_code,
                )
                await asyncio.sleep(backoff.next_delay())
        finally:
            self._feeding = False
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeder
            if self.connection is not None:
                await self.connection.close(1001, "charger disconnected")

    async def close(self, code: int, reason: str) -> None:
        if self.connection is not None:
            await self.connection.close(code, reason)

    async def _load(self) -> None:
        """What an earlier connection or relay left for this backend: its queue and map."""
        store = self._store()
        if store is None:
            return
        try:
            async with asyncio.timeout(NATS_TIMEOUT):
                backlog = await store.backlog(self.charge_point_id, self.name)
                mapping = await store.transaction_map(self.charge_point_id, self.name)
        except (*NatsTrouble, ValueError) as exc:
            log.warning(
                "%r: cannot read backend %r's queue now: %r", self.charge_point_id, self.name, exc
            )
            return
        finally:
            cancellation_checkpoint()
        self.queue.found(backlog)
        if mapping:
            self.transactions.map = self.replayer.transaction_map = mapping
        if backlog.depth:
            log.info(
                "%r: %d message(s) wait for backend %r",
                self.charge_point_id,
                backlog.depth,
                self.name,
            )

    async def _serve(self, connection: Leg) -> None:
        """One connection: catch up first if anything waits, then forward live."""
        self.replayer.connected()  # before the feeder can see the connection
        self.connection = connection
        self._set_state("up")
        replay = self.replayer.start(connection)
        try:
            await self._read(connection)
            self.connection = None  # dropped (if cancelled, run() closes it)
        finally:
            self.replayer.active = False
            if replay is not None:
                await self._stop(replay)

    async def _stop(self, replay: asyncio.Task[None]) -> None:
        """Cancel the replay; its failure is logged, never raised into the charger's session."""
        replay.cancel()
        try:
            await replay
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("%r: replay to backend %r failed", self.charge_point_id, self.name)

    def _set_state(self, state: str) -> None:
        self._first_attempt.set()
        if state != self.state:
            self.state = state
            kind = EventKind.BACKEND_UP if state == "up" else EventKind.BACKEND_DOWN
            self.tap.event(kind, backend=self.name)
            self.on_state()

    async def _connect(self, backoff: Backoff) -> Leg:
        while True:
            try:
                connection = await open_upstream(
                    self.options,
                    self.charge_point_id,
                    subprotocols=[self.subprotocol] if self.subprotocol else [],
                    authorization=self.authorization,
                    user_agent=self.user_agent,
                )
            except UpstreamRefused as refusal:
                log.warning(
                    "%r: backend %r answered HTTP %d",
                    self.charge_point_id,
                    self.name,
                    refusal.status,
                )
            except UpstreamUnreachable as exc:
                log.info("%r: backend %r unreachable (%s)", self.charge_point_id, self.name, exc)
            else:
                if connection.subprotocol == self.subprotocol:
                    backoff.reset()
                    log.info("%r: backend %r connected", self.charge_point_id, self.name)
                    return connection
                log.warning(
                    "%r: backend %r chose subprotocol %r, not the charger's %r",
                    self.charge_point_id,
                    self.name,
                    connection.subprotocol,
                    self.subprotocol,
                )
                await connection.close(1002, "the charger speaks another subprotocol")
            self._set_state("down")
            await asyncio.sleep(backoff.next_delay())

    # The feeder: the outbox to the backend, or to its queue.

    async def _feed(self) -> None:
        while True:
            item = await self._outbox.get()
            try:
                if item is not None:
                    await self._route(*item)
                if self.transactions.changed:
                    await self._save_map()
            finally:
                self._outbox.task_done()
                cancellation_checkpoint()

    async def _route(self, message: str | bytes, from_charger: bool) -> None:
        await self._first_attempt.wait()
        parsed = inspect(message)
        frame = parsed if isinstance(parsed, Frame) else None
        route = secondary_route(
            self.version,
            frame,
            from_charger=from_charger,
            connected=self.connection is not None,
            catching_up=self.replayer.active,
        )
        if route is Route.SEND and not await self._send_now(message, frame, from_charger):
            # It dropped meanwhile: what it needs later goes to its queue after all.
            route = secondary_route(
                self.version, frame, from_charger=from_charger, connected=False, catching_up=True
            )
        if route is Route.KEEP:
            assert frame is not None
            await self._keep(message, frame)

    async def _keep(self, message: str | bytes, frame: Frame) -> None:
        """Append a CALL to this backend's queue (a replay that starts meanwhile waits)."""
        assert frame.action is not None
        async with self.queue.appending():
            transaction_id = None
            start = self.transactions.start(frame.message_id)
            if frame.action == "StartTransaction" and start is not None:
                # Stored with the id the charger was given: the replay maps it to the
                # backend's own.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(START_ANSWER_TIMEOUT):
                        await start.charger_answered.wait()
                transaction_id = start.charger_id
            await self.queue.append(
                _text(message), action=frame.action, offline_transaction_id=transaction_id
            )

    async def _send_now(
        self, message: str | bytes, frame: Frame | None, from_charger: bool
    ) -> bool:
        """Write one frame to the connection; False when it is gone."""
        connection = self.connection
        if connection is None:
            return False
        try:
            if not from_charger or frame is None or not frame.is_call:
                await connection.send(message)
                return True
            if self.transaction_map and isinstance(message, str):
                message = self.transaction_map.towards_csms(frame, message)
            start = self.transactions.start(frame.message_id)
            await connection.send(message)
            if frame.action == "StartTransaction" and start is not None and not self._ending:
                # Its transaction id must be known before the charger's next CALLs name it.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(START_ANSWER_TIMEOUT):
                        await start.backend_answered.wait()
        except ConnectionClosed:
            return False
        return True

    async def _save_map(self) -> None:
        self.transactions.changed = False
        try:
            await self.queue.save_transaction_map(self.transaction_map)
        except (ConnectionError, *NatsTrouble) as exc:  # kept in memory; saved with the next
            log.warning(
                "%r: could not save backend %r's transaction map: %r",
                self.charge_point_id,
                self.name,
                exc,
            )

    async def _read(self, connection: Leg) -> None:
        async for message in LegReader(connection):
            parsed = inspect(message)
            if isinstance(parsed, Frame) and self.replayer.take_answer(parsed, message):
                continue  # an answer to a replayed CALL: published, swallowed
            if isinstance(parsed, Frame) and parsed.is_call and parsed.action is not None:
                self.tap.frame(Direction.DOWNSTREAM, message, parsed, backend=self.name)
                await self.on_call(self, parsed, _text(message))
                continue
            # An answer to the charger's CALL: published, swallowed.
            action = (
                self.charger_calls.answered(parsed.message_id)
                if isinstance(parsed, Frame)
                else None
            )
            self.tap.frame(Direction.DOWNSTREAM, message, parsed, action=action, backend=self.name)
            if isinstance(parsed, Frame) and action == "StartTransaction":
                self._learned(self.transactions.backend_answered(parsed))
