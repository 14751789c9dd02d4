"""One secondary backend of one charger: its own connection, reconnect and catch-up.

A :class:`SecondaryLink` receives a copy of every CALL the charger sends, and answers to
the CALLs it made itself; it never delays the charger or the primary: frames go into a
bounded outbox that the link's own task writes. Its answers to the charger's CALLs are
published and swallowed; its CALLs go to the session (``on_call``), which applies the
backend's policy and the lane.

While it is unreachable, the CALLs it will need later (the ones the offline replay keeps:
boot and status notifications, transactions; :func:`~oye_relay.replay_rules.is_kept`)
wait in memory, in order, and are sent first when it is back: it catches up without
the primary ever noticing. 1.6 transaction ids: when the secondary answers a
StartTransaction with its own id, the charger's CALLs name the primary's id; the link
maps them per backend (:class:`~oye_relay.transaction_map.TransactionMap`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from oye_relay.calls import PendingCalls
from oye_relay.replay_rules import is_kept
from oye_relay.traffic import TrafficTap, inspect
from oye_relay.transaction_map import TransactionMap
from oye_relay.upstream import Backoff, UpstreamOptions, UpstreamRefused, UpstreamUnreachable
from oye_relay.upstream import open_upstream as _open_upstream
from oye_shared.backends import BackendAuth, SecondaryBackend
from oye_shared.frames import Frame
from oye_shared.subjects import Direction, EventKind

log = logging.getLogger(__name__)

OUTBOX = 1000
MISSED = 10_000
STARTS = 16
#: How long frames for a backend wait for its answer to a 1.6 StartTransaction.
START_ANSWER_TIMEOUT = 10.0

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
        open_upstream: Callable[..., Awaitable[ClientConnection]] = _open_upstream,
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
        self._open = open_upstream
        #: "connecting" (never connected yet), "up" or "down".
        self.state = "connecting"
        self.connection: ClientConnection | None = None
        self._outbox: asyncio.Queue[str | bytes] = asyncio.Queue(OUTBOX)
        self._missed: deque[str | bytes] = deque(maxlen=MISSED)
        self.charger_calls = PendingCalls()  # the charger's CALLs it must answer
        self.transaction_map = TransactionMap(any_charger_id=True)
        # 1.6 StartTransaction message id -> [the charger's transaction id, ours]
        self._starts: OrderedDict[str, list[int | None]] = OrderedDict()
        self._start_answered: dict[str, asyncio.Event] = {}
        self.dropped = 0

    # What the session hands over; never blocks.

    def charger_sent(self, message: str | bytes, frame: Frame) -> None:
        """A CALL (or SEND) of the charger: this backend gets it too. (The session
        published it once; publishing it again per backend would count and log it twice.)"""
        if frame.action is not None and frame.is_call:
            self.charger_calls.sent(frame.message_id, frame.action)
        if frame.action == "StartTransaction":
            self._starts[frame.message_id] = [None, None]
            if len(self._starts) > STARTS:
                self._starts.popitem(last=False)
        if self.state == "up":
            self._post(message)
        elif is_kept(self._version() or "2.0.1", frame):
            self._missed.append(message)  # sent first when it is back

    def send(
        self, message: str, frame: Frame, direction: Direction, *, action: str | None = None
    ) -> None:
        """A frame for this backend: the charger's answer to its CALL (``UPSTREAM``), or the
        proxy's (``PROXY_RESPONSE``); published here, dropped while it is down."""
        self.tap.frame(direction, message, frame, action=action, backend=self.name)
        if self.state == "up":
            self._post(message)

    def charger_answered(self, frame: Frame) -> None:
        """The charger got the answer to its CALL ``frame.message_id`` (from the primary
        or the proxy): learn its 1.6 transaction id."""
        start = self._starts.get(frame.message_id)
        if start is not None and isinstance(frame.payload, dict):
            transaction_id = frame.payload.get("transactionId")
            if isinstance(transaction_id, int):
                start[0] = transaction_id
                self._learn(frame.message_id)

    def towards_charger(self, frame: Frame, text: str) -> str:
        """This backend's CALL with its 1.6 transaction ids as the charger knows them."""
        return self.transaction_map.towards_charger(frame, text) if self.transaction_map else text

    def _post(self, message: str | bytes) -> None:
        try:
            self._outbox.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning(
                "%r: backend %r does not keep up; a frame for it was dropped",
                self.charge_point_id,
                self.name,
            )

    def _learn(self, message_id: str) -> None:
        ours, theirs = self._starts[message_id]
        if ours is not None and theirs is not None:
            del self._starts[message_id]
            if ours != theirs:
                log.info(
                    "%r: transaction %d is %d at backend %r",
                    self.charge_point_id,
                    ours,
                    theirs,
                    self.name,
                )
                self.transaction_map.add(ours, theirs)

    # The connection.

    async def run(self) -> None:
        """Keep the backend connected until cancelled; never ends the charger's session."""
        backoff = Backoff(maximum=self.backoff_max)
        try:
            while True:
                connection = await self._connect(backoff)
                self.connection = connection
                for message in self._missed:
                    self._post(message)
                self._missed.clear()
                self._set_state("up")
                writer = asyncio.create_task(self._write(connection), name=f"to {self.name}")
                try:
                    await self._read(connection)
                finally:
                    writer.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await writer
                self.connection = None
                self._drain_outbox()
                self._set_state("down")
                log.warning(
                    "%r: backend %r dropped (%s); reconnecting",
                    self.charge_point_id,
                    self.name,
                    connection.close_code,
                )
                await asyncio.sleep(backoff.next_delay())
        finally:
            if self.connection is not None:
                await self.connection.close(1001, "charger disconnected")

    async def close(self, code: int, reason: str) -> None:
        if self.connection is not None:
            await self.connection.close(code, reason)

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            kind = EventKind.BACKEND_UP if state == "up" else EventKind.BACKEND_DOWN
            self.tap.event(kind, backend=self.name)
            self.on_state()

    def _drain_outbox(self) -> None:
        """What was not written when it dropped: the kept CALLs wait for the next time."""
        while not self._outbox.empty():
            message = self._outbox.get_nowait()
            parsed = inspect(message)
            if isinstance(parsed, Frame) and is_kept(self._version() or "2.0.1", parsed):
                self._missed.append(message)

    async def _connect(self, backoff: Backoff) -> ClientConnection:
        while True:
            try:
                connection = await self._open(
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

    async def _write(self, connection: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                message = await self._outbox.get()
                parsed = inspect(message)
                if not isinstance(parsed, Frame) or not parsed.is_call:
                    await connection.send(message)
                    continue
                if self.transaction_map and isinstance(message, str):
                    message = self.transaction_map.towards_csms(parsed, message)
                if parsed.action != "StartTransaction" or parsed.message_id not in self._starts:
                    await connection.send(message)
                    continue
                # Its transaction id must be known before the charger's next CALLs name it.
                answered = self._start_answered[parsed.message_id] = asyncio.Event()
                try:
                    await connection.send(message)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(START_ANSWER_TIMEOUT):
                            await answered.wait()
                finally:
                    self._start_answered.pop(parsed.message_id, None)

    async def _read(self, connection: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in connection:
                parsed = inspect(message)
                if isinstance(parsed, Frame) and parsed.is_call and parsed.action is not None:
                    self.tap.frame(Direction.DOWNSTREAM, message, parsed, backend=self.name)
                    text = (
                        message if isinstance(message, str) else message.decode("utf-8", "replace")
                    )
                    await self.on_call(self, parsed, text)
                    continue
                # An answer to the charger's CALL: published, swallowed.
                action = (
                    self.charger_calls.answered(parsed.message_id)
                    if isinstance(parsed, Frame)
                    else None
                )
                self.tap.frame(
                    Direction.DOWNSTREAM, message, parsed, action=action, backend=self.name
                )
                if isinstance(parsed, Frame) and action == "StartTransaction":
                    self._their_start(parsed)

    def _their_start(self, frame: Frame) -> None:
        start = self._starts.get(frame.message_id)
        if start is not None and isinstance(frame.payload, dict):
            transaction_id = frame.payload.get("transactionId")
            if isinstance(transaction_id, int):
                start[1] = transaction_id
                self._learn(frame.message_id)
        if (answered := self._start_answered.get(frame.message_id)) is not None:
            answered.set()
