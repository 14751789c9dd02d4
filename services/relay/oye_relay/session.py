"""One charger connection: its two directions, and the upstream leg kept alive.

Each direction is a :class:`~oye_relay.flow.Flow`: a frame is handled in the read
callback that parsed it when nothing on its way needs waiting (``_from_charger_now``,
``_from_upstream_now``), else in order by a task (``_from_charger``, ``_from_upstream``:
what the pumps did before). No task waits for a leg to end: the relay calls
:meth:`ChargerSession.wind_up` when the charger's socket has ended (its last frames go
through, then the upstream is closed with the matching code), and the upstream's end
starts a task only then: a CSMS that closes deliberately closes the charger the same
way, one that drops is reconnected with backoff while the charger stays.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

from nats.aio.client import Client
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.protocol import State
from websockets.typing import Data

from oye_relay.authorization import OfflineAuthorization
from oye_relay.auto_charge import remote_start_for
from oye_relay.backend_set import BackendSet
from oye_relay.calls import PendingCalls
from oye_relay.flow import Flow
from oye_relay.inject_endpoint import InjectEndpoint
from oye_relay.injection import Injector
from oye_relay.lane import CallLane, LaneCall, Origin, Reply
from oye_relay.lane_keeper import LaneKeeper
from oye_relay.legs import Leg
from oye_relay.limit_keeper import LimitKeeper, is_accepted_boot, no_stored_limit
from oye_relay.offline import offline_answer
from oye_relay.offline_queue import ChargerQueue, ReplayStore
from oye_relay.rate import CallRate
from oye_relay.replayer import Replayer
from oye_relay.reports import FollowUps
from oye_relay.tracker import ChargerTracker
from oye_relay.traffic import TrafficTap, inspect, track
from oye_relay.transaction_ids import TransactionIds
from oye_relay.transaction_map import TransactionMap
from oye_relay.upstream import (
    DELIBERATE_CLOSE_CODES,
    CloseCharger,
    UpstreamOptions,
    reopen_upstream,
)
from oye_shared.backends import Policy, SecondaryBackend
from oye_shared.frames import Frame, FrameError, call_error_frame, parse_frame
from oye_shared.inject import InjectOutcome, InjectReply, InjectRequest
from oye_shared.limits import LimitIds
from oye_shared.state import OCPP_VERSIONS, ChargerState, encode_state
from oye_shared.subjects import Direction, EventKind, Subjects

log = logging.getLogger(__name__)

REPLACED_REASON = "replaced by a new connection"
NOT_CONNECTED = "the charger disconnected before it answered"
DEFAULT_HEARTBEAT_INTERVAL = 300


def _text(message: str | bytes) -> str:
    return message if isinstance(message, str) else message.decode(errors="replace")


def mirror_close_code(code: int | None) -> int:
    """The code to close the other leg with, when one leg ended with ``code``."""
    if code is None or code == 1005:  # closed without a status code
        return 1000
    if code in (1006, 1015):  # dropped, or TLS failed: that side went away
        return 1001
    if 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999:
        return code
    return 1000


class ChargerSession:
    """Relays one charger connection to its CSMS, publishing every frame."""

    # One per connected charger: slots keep it compact (its 32 attributes would
    # otherwise make a dictionary of its own, ~1.7 KiB).
    __slots__ = (
        "_auto_starts",
        "_charger_flow",
        "_cut_off",
        "_keeper",
        "_links",
        "_replay",
        "_state_changed",
        "_upstream_flow",
        "authorization",
        "auto_charge_tag",
        "backends",
        "backoff_max",
        "call_rate",
        "call_timeout",
        "charge_point_id",
        "charger",
        "charger_calls",
        "close_when_offline",
        "csms_calls",
        "current_upstream_options",
        "ended",
        "follow_ups",
        "inject_endpoint",
        "injector",
        "lane",
        "lane_keeper",
        "limits",
        "offered_subprotocols",
        "offline_authorization",
        "replayer",
        "tap",
        "tracker",
        "transaction_ids",
        "transaction_map",
        "upstream",
        "upstream_options",
        "user_agent",
    )

    def __init__(
        self,
        *,
        charger: Leg,
        charge_point_id: str,
        tap: TrafficTap,
        upstream: Leg | None,
        upstream_options: UpstreamOptions | None,
        current_upstream_options: Callable[[], UpstreamOptions | None],
        offered_subprotocols: Sequence[str],
        authorization: str | None,
        user_agent: str | None,
        backoff_max: float,
        close_when_offline: bool,
        call_timeout: float,
        tracker: ChargerTracker,
        on_state_change: Callable[[ChargerState], None],
        transaction_ids: TransactionIds,
        offline_authorization: OfflineAuthorization,
        auto_charge_tag: Callable[[], str | None],
        limit_ids: LimitIds | None = None,
        failsafe_limit: float | None = None,
        stored_limit: Callable[[], Awaitable[float | None]] = no_stored_limit,
        queue: ChargerQueue | None = None,
        transaction_map: TransactionMap | None = None,
        replay_attempts: int = 3,
        call_rate: CallRate | None = None,
        primary_policy: Mapping[str, Policy] | None = None,
        secondaries: Sequence[tuple[SecondaryBackend, UpstreamOptions]] = (),
        charger_authorization: str | None = None,
        replay_store: Callable[[], ReplayStore | None] = lambda: None,
    ) -> None:
        self.charger = charger
        self.charge_point_id = charge_point_id
        self.call_rate = call_rate
        #: Flooded for too long: closing with 1008; what it still sends is read and dropped.
        self._cut_off = False
        self.tap = tap
        self.upstream = upstream
        self.upstream_options = upstream_options
        self.current_upstream_options = current_upstream_options
        self.offered_subprotocols = list(offered_subprotocols)
        self.offline_authorization = offline_authorization
        self.auto_charge_tag = auto_charge_tag
        # The relay's own injections (automatic starts, limits), cancelled at the end.
        self._auto_starts: set[asyncio.Task[Any]] = set()
        # One for every part that asks (a lambda costs 200 bytes per charger).
        version = lambda: self.version  # noqa: E731
        self.limits = LimitKeeper(
            charge_point_id=charge_point_id,
            version=version,
            inject=self.inject,
            spawn=self._track,
            ended=lambda: self.ended,
            limit_ids=limit_ids,
            failsafe_limit=failsafe_limit,
            stored_limit=stored_limit,
        )
        self.user_agent = user_agent
        self.backoff_max = backoff_max
        self.close_when_offline = close_when_offline
        # CALLs the charger made (the CSMS answers) and CALLs the CSMS made (the charger answers).
        self.charger_calls = PendingCalls(on_answered=tap.csms_answered)
        self.csms_calls = PendingCalls(on_answered=tap.charger_answered)
        # Each direction's flow (the upstream's while it is open), the replay to the
        # CSMS, the task that reconnects it (only while it is down) and the secondaries'.
        self._charger_flow: Flow | None = None
        self._upstream_flow: Flow | None = None
        self._replay: asyncio.Task[None] | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._links: Sequence[asyncio.Task[None]] = ()
        # CALLs towards the charger, the CSMS's and the owner's, one at a time.
        self.call_timeout = call_timeout
        self.lane = CallLane()
        self.lane_keeper = LaneKeeper(
            self.lane, send=self._send_call, timed_out=self._lane_timed_out, spawn=self._track
        )
        self.follow_ups = FollowUps()
        self.injector = Injector(
            lane=self.lane,
            follow_ups=self.follow_ups,
            send_call=self._send_call,
            default_timeout=call_timeout,
            on_remote_start=offline_authorization.remote_started,
            metrics=tap.metrics,
        )
        self.inject_endpoint = InjectEndpoint(self)
        self.ended = False
        self.tracker = tracker
        self.transaction_ids = transaction_ids
        self.authorization = authorization
        self._state_changed = on_state_change
        # What the CSMS missed while it was unreachable, and its 1.6 transaction ids.
        self.transaction_map = transaction_map if transaction_map is not None else TransactionMap()
        self.replayer = Replayer(
            charge_point_id=charge_point_id,
            queue=queue,
            transaction_map=self.transaction_map,
            tap=tap,
            version=version,
            call_timeout=call_timeout,
            attempts=replay_attempts,
        )
        if upstream is not None:
            self.replayer.connected()  # a queue left by an earlier connection goes first
        # Every backend's CALLs and the secondary backends of this charger.
        self.backends = BackendSet(
            charge_point_id=charge_point_id,
            subprotocol=charger.subprotocol,
            version=version,
            lane=self.lane,
            send_call=self._send_call,
            call_timeout=call_timeout,
            tap=tap,
            state=tracker.state,
            state_changed=on_state_change,
            primary_policy=primary_policy,
            secondaries=secondaries,
            charger_authorization=charger_authorization,
            user_agent=user_agent,
            backoff_max=backoff_max,
            replay_store=replay_store,
            replay_attempts=replay_attempts,
        )

    @property
    def replay_backlog(self) -> int:
        """Messages waiting to be replayed to the CSMS (for metrics)."""
        return self.replayer.backlog

    @property
    def replay_oldest(self) -> float | None:
        """When the oldest of them arrived, epoch seconds (for metrics)."""
        return self.replayer.oldest

    @property
    def secondary_backlogs(self) -> dict[str, tuple[int, float | None]]:
        """Each secondary's replay backlog and its oldest message's arrival (for metrics)."""
        return self.backends.replay_backlogs()

    @property
    def version(self) -> str | None:
        return OCPP_VERSIONS.get(self.subprotocol or "")

    @property
    def subprotocol(self) -> str | None:
        return self.charger.subprotocol

    def start(self) -> None:
        """Relay from now on: the charger's frames, and the upstream kept connected.
        Nothing waits for the legs to end: :meth:`wind_up` once the charger's has."""
        flow = self._charger_flow = Flow(
            self.charger,
            now=self._from_charger_now,
            later=self._from_charger,
            destination=lambda: self.upstream,
            on_error=partial(self._close_failed, self.charger),
            name=f"charger {self.charge_point_id!r}",
        )
        flow.start()
        self._links = self.backends.start()
        self._track(self.limits.after_connect())
        if self.upstream is not None:
            self._upstream_opened(self.upstream)
        elif self.upstream_options is not None:
            self._keeper = asyncio.create_task(
                self._reconnect(), name=f"upstream {self.charge_point_id!r}"
            )

    async def wind_up(self) -> None:
        """The charger's socket has ended: its last frames through, then the rest of the
        session stopped and the upstream closed with the matching code."""
        flow = self._charger_flow  # None if start() failed before it was made
        try:
            if flow is not None:
                await flow.drained()
        finally:
            if flow is not None:
                flow.stop()
            self.ended = True
            try:
                await self.backends.flush()  # bounded: kept messages reach their queues
            finally:
                await self._end()

    async def _end(self) -> None:
        """Stop the session's tasks and close what is left of it."""
        for task in (self._keeper, *self._links):
            if task is not None:
                await _stop(task)
        await self._upstream_stopped()
        self.lane_keeper.stop()
        for call in self.lane.drain():
            call.settle(None)
        for auto_start in list(self._auto_starts):
            auto_start.cancel()
        await self.inject_endpoint.detach()
        if self.upstream is not None:
            code = mirror_close_code(self.charger.close_code)
            await self.upstream.close(code, self.charger.close_reason or "")

    async def close(self, code: int, reason: str) -> None:
        await self.charger.close(code, reason)

    def _from_charger_now(self, message: Data) -> bool:
        """Forward a charger frame at once when nothing on its way waits (nearly always);
        False, with nothing changed, when it must go through :meth:`_from_charger`."""
        if self._cut_off:
            return True  # dropped: the charger's close frame is behind its flood
        upstream = self.upstream
        if upstream is None or not upstream.writable():
            return False
        parsed = inspect(message)
        if isinstance(parsed, Frame):
            if parsed.is_call and (
                self.replayer.active or self.follow_ups or not self._rate_takes()
            ):
                return False  # refused, answered here or kept for the replay: may wait
            taken = self._charger_frame(parsed, message)
            if taken is None:
                return True
            parsed, message = taken
            self.backends.charger_sent(message, parsed)
        upstream.write(self._towards_csms(message, parsed))
        # Published once on its way: its answer cannot come before this callback returns.
        action = track(parsed, self.charger_calls, self.csms_calls)
        self.tap.frame(Direction.UPSTREAM, message, parsed, action=action)
        if isinstance(parsed, Frame) and parsed.is_reply:
            self.limits.charger_replied(parsed)
        return True

    async def _from_charger(self, message: Data) -> None:
        """A charger frame, whatever it needs waited for."""
        if self._cut_off:
            return  # dropped: the charger's close frame is behind its flood
        parsed = inspect(message)
        if isinstance(parsed, Frame):
            if parsed.is_call and not await self._within_rate(parsed, message):
                return
            taken = self._charger_frame(parsed, message)
            if taken is None:
                return
            parsed, message = taken
            if await self._follow_up_here(parsed, message):
                return
            self.backends.charger_sent(message, parsed)
        action = track(parsed, self.charger_calls, self.csms_calls)
        self.tap.frame(Direction.UPSTREAM, message, parsed, action=action)
        await self._send_upstream(message, parsed)
        if isinstance(parsed, Frame) and parsed.is_reply:
            self.limits.charger_replied(parsed)
        if self.upstream is None and isinstance(parsed, Frame):
            self._start_automatically(parsed)

    def _charger_frame(self, frame: Frame, message: Data) -> tuple[Frame, Data] | None:
        """What every charger frame goes through first: the bookkeeping, and the answers
        that stop here. The frame to go on with (a reply may get its backend's id back)."""
        if frame.is_call:
            self.limits.charger_called(frame.action)
        if self.tracker.from_charger(frame):
            self._state_changed(self.tracker.state)
        if frame.is_reply:
            if self.backends.rewrites_ids:
                # Without secondaries the reply passes as it came (binary stays binary).
                routed = self.backends.route_reply(frame, _text(message))
                if routed is None:
                    return None  # a secondary's: gone to it
                message, frame = routed
            if self._reply_handled_here(frame, message):
                return None
        return frame, message

    def _rate_takes(self) -> bool:
        """A CALL within the charger's rate (one over it is refused by _within_rate)."""
        rate = self.call_rate
        return rate is None or rate.take(asyncio.get_running_loop().time())

    async def _within_rate(self, frame: Frame, message: str | bytes) -> bool:
        """A CALL over the charger's rate is refused here (and a lasting flood ends it)."""
        rate = self.call_rate
        now = asyncio.get_running_loop().time()
        if rate is None or rate.allow(now):
            return True
        self.tap.frame(Direction.UPSTREAM, message, frame)
        refusal = call_error_frame(
            frame.message_id, "GenericError", f"rate limit: at most {rate.rate:g} CALLs a second"
        )
        self.tap.frame(Direction.PROXY_RESPONSE, refusal, parse_frame(refusal), action=frame.action)
        await self.charger.send(refusal)
        # A flood arrives faster than it is refused, so this pump would never wait for a
        # frame and keep the loop to itself: let the other chargers' work run in between.
        await asyncio.sleep(0)
        if rate.persists(now):
            log.warning(
                "%r: still flooding after %gs; disconnecting",
                self.charge_point_id,
                rate.disconnect_after,
            )
            self._cut_off = True
            # Not awaited here: the closing handshake needs this pump to read on (with its
            # queue full, websockets stops reading, and the close would wait for its timeout).
            self._track(self.charger.close(1008, "too many calls"))
        return False

    def _reply_handled_here(self, frame: Frame, message: Data) -> bool:
        """Settle the lane call a reply answers; True when the CSMS must not see it."""
        call = self.lane.matches(frame.message_id)
        if self.injector.is_injected(frame.message_id):
            action = self.injector.recent.get(frame.message_id)
            self.tap.frame(Direction.INJECTION_RESPONSE, message, frame, action=action)
            if call is None:
                log.info(
                    "%r: late answer to injected %s %s swallowed",
                    self.charge_point_id,
                    action,
                    frame.message_id,
                )
            else:
                call.settle(Reply(frame, _text(message)))
            return True
        if call is not None:
            call.settle(Reply(frame, _text(message)))  # the CSMS's call, answered
        return False

    async def _follow_up_here(self, frame: Frame, message: Data) -> bool:
        """Answer a report an injected request asked for (the CSMS never did); True then."""
        if not frame.is_call or frame.action is None or not self.follow_ups:
            return False
        now = asyncio.get_running_loop().time()
        collector = self.follow_ups.claim(frame.action, frame.payload, now)
        if collector is None:
            return False
        collector.add(frame.payload)
        if collector.complete.is_set():
            self.follow_ups.forget(collector)
        self.tap.frame(Direction.INJECTION_RESPONSE, message, frame)
        await self._answer_here(frame)
        return True

    def _start_automatically(self, frame: Frame) -> None:
        """CSMS unavailable and automatic charging on: start a connector that is ready."""
        id_tag = self.auto_charge_tag()
        if id_tag is None:
            return
        request = remote_start_for(
            frame, id_tag=id_tag, open_transactions=self.tracker.state.transactions
        )
        if request is None:
            return
        log.info("%r: CSMS unavailable; starting automatically (%s)", self.charge_point_id, id_tag)
        self._track(self.inject(request))  # answered through this very pump

    def _track(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._auto_starts.add(task)
        task.add_done_callback(self._auto_starts.discard)

    async def _answer_here(self, frame: Frame, *, keep: str | bytes | None = None) -> None:
        """Answer a charger CALL in the CSMS's place, as its offline answer.

        ``keep``: the CALL as it arrived, to be kept for the CSMS if it needs it later.
        """
        assert frame.action is not None
        version = self.version or "2.0.1"
        transaction_id = self.transaction_ids.next() if frame.action == "StartTransaction" else None
        answer = offline_answer(
            version,
            frame.action,
            frame.payload,
            now=datetime.now(UTC),
            heartbeat_interval=DEFAULT_HEARTBEAT_INTERVAL,
            transaction_id=transaction_id,
            authorize=self.offline_authorization,
        )
        text = answer.frame(frame.message_id)
        if keep is not None and self._csms_needs_later(frame):
            # Stored before the charger is answered: once answered, it keeps nothing back.
            await self.replayer.keep(frame, keep, transaction_id)
        if text is None:
            return
        answer_frame = parse_frame(text)
        self.tap.frame(Direction.PROXY_RESPONSE, text, answer_frame, action=frame.action)
        if self.tracker.to_charger(answer_frame):
            self._state_changed(self.tracker.state)
        self.backends.charger_answered(answer_frame)
        await self.charger.send(text)
        if is_accepted_boot(frame.action, answer_frame):
            self.limits.boot_accepted(
                by_proxy=True, csms_configured=self.upstream_options is not None
            )

    def _csms_needs_later(self, frame: Frame) -> bool:
        """A configured CSMS (not standalone, forwarding on) missed a CALL it needs."""
        return self.current_upstream_options() is not None and self.replayer.keeps(frame)

    async def _send_upstream(self, message: str | bytes, parsed: Frame | FrameError) -> None:
        upstream = self.upstream
        is_call = isinstance(parsed, Frame) and parsed.is_call
        if upstream is not None and not (self.replayer.active and is_call):
            try:
                await upstream.send(self._towards_csms(message, parsed))
                return
            except ConnectionClosed:
                log.warning("%r: CSMS dropped while forwarding a frame", self.charge_point_id)
        # No CSMS (standalone, unreachable now, or still catching up): answer in its place.
        if isinstance(parsed, Frame) and parsed.is_call:
            await self._answer_here(parsed, keep=message)

    def _towards_csms(self, message: Data, parsed: Frame | FrameError) -> Data:
        """The frame with the CSMS's own 1.6 transaction ids (learned in a replay)."""
        if self.transaction_map and isinstance(parsed, Frame):
            return self.transaction_map.towards_csms(parsed, _text(message))
        return message

    # The upstream: a flow (and the replay) while it is open, a task only while it is not.

    def _upstream_opened(self, upstream: Leg) -> None:
        """Relay CSMS -> charger, and replay what the CSMS missed, until it closes."""
        self._replay = self.replayer.start(upstream)
        flow = self._upstream_flow = Flow(
            upstream,
            now=self._from_upstream_now,
            later=partial(self._from_upstream, upstream),
            destination=lambda: self.charger,
            on_error=partial(self._close_failed, upstream),
            name=f"CSMS {self.charge_point_id!r}",
        )
        flow.start()
        upstream.on_closed(self._upstream_closed)

    def _upstream_closed(self) -> None:
        if not self.ended:  # else _end() stops what is left
            self._keeper = asyncio.create_task(
                self._upstream_lost(), name=f"upstream {self.charge_point_id!r}"
            )

    async def _upstream_stopped(self) -> None:
        """The upstream's last frames through, its flow and replay stopped."""
        flow, self._upstream_flow = self._upstream_flow, None
        replay, self._replay = self._replay, None
        try:
            if flow is not None and not self.ended:
                await flow.drained()
        finally:
            if flow is not None:
                flow.stop()
            self.replayer.active = False
            if replay is not None:
                await _stop(replay)

    async def _upstream_lost(self) -> None:
        """The CSMS's socket ended while the charger's is open: close the charger too,
        or reconnect."""
        upstream = self.upstream
        assert upstream is not None
        await self._upstream_stopped()
        if self.charger.state is not State.OPEN:
            return  # the charger is gone; wind_up() closes the upstream
        self.upstream = None
        code = upstream.close_code
        if upstream.close_received and code in DELIBERATE_CLOSE_CODES:
            log.info("%r: CSMS closed the connection (%s)", self.charge_point_id, code)
            await self.charger.close(mirror_close_code(code), upstream.close_reason or "")
            return
        self.tap.event(EventKind.UPSTREAM_DOWN, code=code, reason=upstream.close_reason)
        self._set_upstream_state("down")
        if self.close_when_offline:
            log.warning(
                "%r: CSMS connection lost (%s); closing the charger", self.charge_point_id, code
            )
            await self.charger.close(1001, "CSMS connection lost")
            return
        log.warning("%r: CSMS connection lost (%s); reconnecting", self.charge_point_id, code)
        await self._reconnect()

    def _set_upstream_state(self, state: str) -> None:
        self.tracker.state.upstream = state
        self.backends.update_state()
        self._state_changed(self.tracker.state)
        if state == "down":
            self.limits.apply_failsafe()
        elif state == "up":
            self.limits.remove_failsafe()

    async def _reconnect(self) -> None:
        """Open the upstream again (with backoff), unless the charger must go instead."""
        reopened = await reopen_upstream(
            self.current_upstream_options,
            self.charge_point_id,
            subprotocol=self.subprotocol,
            # Once the charger has a subprotocol, only that one will do.
            offer=[self.subprotocol] if self.subprotocol else self.offered_subprotocols,
            authorization=self.authorization,
            user_agent=self.user_agent,
            backoff_max=self.backoff_max,
        )
        if reopened is None:
            return  # forwarding is off now: the relay answers in the CSMS's place
        if isinstance(reopened, CloseCharger):
            await self.charger.close(reopened.code, reopened.reason)
            return
        self.upstream = reopened
        self.replayer.connected()  # before any new CALL is forwarded
        self._set_upstream_state("up")
        self.tap.event(EventKind.UPSTREAM_UP)
        log.info("%r: CSMS connected", self.charge_point_id)
        self._upstream_opened(reopened)

    def _from_upstream_now(self, message: Data) -> bool:
        """Forward a CSMS frame at once when nothing on its way waits (nearly always);
        False, with nothing changed, when it must go through :meth:`_from_upstream`."""
        charger = self.charger
        if not charger.writable():
            return False
        parsed = inspect(message)
        if isinstance(parsed, Frame):
            if parsed.is_call and parsed.action is not None:
                return False  # the lane towards the charger may have to wait
            if self.replayer.take_answer(parsed, message):
                return True
        charger.write(message)
        action = self._to_charger(message, parsed)  # published once on its way, as above
        if isinstance(parsed, Frame):
            self.backends.charger_answered(parsed)
        if isinstance(parsed, Frame) and is_accepted_boot(action, parsed):
            self.limits.boot_accepted(by_proxy=False, csms_configured=True)
        return True

    async def _from_upstream(self, upstream: Leg, message: Data) -> None:
        """A CSMS frame, whatever it needs waited for."""
        parsed = inspect(message)
        if isinstance(parsed, Frame) and self.replayer.take_answer(parsed, message):
            return
        action = self._to_charger(message, parsed)
        if isinstance(parsed, Frame) and parsed.is_call and parsed.action is not None:
            self.limits.csms_called(parsed)
            if self.transaction_map:
                message = self.transaction_map.towards_charger(parsed, _text(message))
            await self.backends.primary_called(upstream, parsed, message)
            return
        if isinstance(parsed, Frame):
            self.backends.charger_answered(parsed)
        await self.charger.send(message)
        if isinstance(parsed, Frame) and is_accepted_boot(action, parsed):
            self.limits.boot_accepted(by_proxy=False, csms_configured=True)

    def _to_charger(self, message: Data, parsed: Frame | FrameError) -> str | None:
        """A CSMS frame on its way to the charger: tracked and published. The action of
        the CALL it answers, if it is a reply."""
        action = track(parsed, self.csms_calls, self.charger_calls)
        self.tap.frame(Direction.DOWNSTREAM, message, parsed, action=action)
        if isinstance(parsed, Frame) and self.tracker.to_charger(parsed):
            self._state_changed(self.tracker.state)
        return action

    def _close_failed(self, connection: Leg) -> None:
        """A frame met a bug of the relay's: close that leg as websockets closes the
        connection of a handler that raised (the error is logged)."""
        self._track(connection.close(CloseCode.INTERNAL_ERROR))

    # The lane towards the charger, shared by every backend (see backend_set.py).

    async def _send_call(self, call: LaneCall) -> None:
        if call.origin is Origin.INJECTED:
            self.tap.frame(
                Direction.INJECTION_REQUEST, call.text, parse_frame(call.text), action=call.action
            )
        self.lane_keeper.sent(call)
        try:
            await self.charger.send(call.text)
        except ConnectionClosed:
            call.settle(None)

    def _lane_timed_out(self, call: LaneCall) -> None:
        self.tap.lane_timed_out(call.origin)
        log.warning(
            "%r: no answer to %s %s %s in time; the lane moves on",
            self.charge_point_id,
            call.origin,
            call.action,
            call.message_id,
        )

    # Injection over NATS.

    async def attach_bus(self, nc: Client, subjects: Subjects) -> None:
        """Take injection requests for this charger (only its relay subscribes)."""
        if not self.ended:
            await self.inject_endpoint.attach(nc, subjects.inject(self.charge_point_id))

    def state_json(self) -> bytes:
        """The charger's state as the fleet's KV will hold it (an ``Oye-Query``)."""
        return encode_state(self.tracker.state)

    async def inject(self, request: InjectRequest) -> InjectReply:
        """Send the owner's CALL to the charger and return its answer."""
        if self.ended:
            return InjectReply(outcome=InjectOutcome.NOT_CONNECTED, detail=NOT_CONNECTED)
        reply = await self.injector.inject(request, self.subprotocol)
        if reply.outcome is InjectOutcome.TIMEOUT and self.ended:
            return InjectReply(
                outcome=InjectOutcome.NOT_CONNECTED,
                message_id=reply.message_id,
                detail=NOT_CONNECTED,
            )
        return reply


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancel a helper task and wait for it; its failure is logged, not raised."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception:
        log.exception("%s failed", task.get_name())
