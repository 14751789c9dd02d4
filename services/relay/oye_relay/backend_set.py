"""Every backend of one charger connection: the primary's CALLs and the secondaries'.

The session owns the charger's socket and the primary's leg; this class owns what the
backends share: their policies, the lane calls they make (with proxy-unique ids when
there are secondaries), where the charger's answers go, the secondary links, and the
``backends`` entry of the charger's state.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence

from websockets.exceptions import ConnectionClosed

from oye_relay.backend_calls import BackendCalls, policy_reply
from oye_relay.lane import CallLane, LaneCall, Reply
from oye_relay.legs import Sender
from oye_relay.message_ids import with_message_id
from oye_relay.offline_queue import ReplayStore
from oye_relay.secondary import SecondaryLink
from oye_relay.traffic import TrafficTap
from oye_relay.upstream import UpstreamOptions
from oye_shared.backends import PRIMARY, Policy, SecondaryBackend, decide
from oye_shared.frames import Frame, parse_frame
from oye_shared.state import ChargerState
from oye_shared.subjects import Direction


class BackendSet:
    def __init__(
        self,
        *,
        charge_point_id: str,
        subprotocol: str | None,
        version: Callable[[], str | None],
        lane: CallLane,
        send_call: Callable[[LaneCall], Awaitable[None]],
        call_timeout: float,
        tap: TrafficTap,
        state: ChargerState,
        state_changed: Callable[[ChargerState], None],
        primary_policy: Mapping[str, Policy] | None,
        secondaries: Sequence[tuple[SecondaryBackend, UpstreamOptions]],
        charger_authorization: str | None,
        user_agent: str | None,
        backoff_max: float,
        replay_store: Callable[[], ReplayStore | None] = lambda: None,
        replay_attempts: int = 3,
    ) -> None:
        self._version = version
        self.lane = lane
        self._send_call = send_call
        self.call_timeout = call_timeout
        self.tap = tap
        self.state = state
        self._state_changed = state_changed
        self.primary_policy = dict(primary_policy or {})
        self.links = [
            SecondaryLink(
                backend=backend,
                options=options,
                charge_point_id=charge_point_id,
                subprotocol=subprotocol,
                version=version,
                authorization=charger_authorization,
                user_agent=user_agent,
                backoff_max=backoff_max,
                tap=tap,
                on_call=self.secondary_called,
                on_state=self.changed,
                store=replay_store,
                call_timeout=call_timeout,
                replay_attempts=replay_attempts,
            )
            for backend, options in secondaries
        ]
        self.calls = BackendCalls(rewrite_ids=bool(self.links))
        self.update_state()

    @property
    def version(self) -> str:
        return self._version() or "2.0.1"

    # Charger -> backends.

    def charger_sent(self, message: str | bytes, frame: Frame) -> None:
        """A charger CALL or SEND: every secondary gets it too."""
        if frame.action is not None and not frame.is_reply:
            for link in self.links:
                link.charger_sent(message, frame)

    def charger_answered(self, frame: Frame) -> None:
        """The charger got an answer to its CALL (the primary's or the proxy's)."""
        for link in self.links:
            link.charger_answered(frame)

    @property
    def rewrites_ids(self) -> bool:
        """Backend CALLs reach the charger under proxy-unique ids (only with secondaries)."""
        return self.calls.rewrite_ids

    def route_reply(self, frame: Frame, text: str) -> tuple[str, Frame] | None:
        """The charger's answer to a backend CALL sent under a proxy-unique id: settle the
        lane, restore the backend's id; a secondary's answer is sent to it here (None)."""
        route = self.calls.route(frame.message_id) if self.calls.rewrite_ids else None
        if route is None:
            return text, frame  # not a rewritten backend call (an injection, or unknown)
        call = self.lane.matches(frame.message_id)
        if call is not None:
            call.settle(Reply(frame, text))
        restored = with_message_id(text, route.original_id)
        restored_frame = parse_frame(restored)
        if route.source == PRIMARY:
            return restored, restored_frame
        link = next((link for link in self.links if link.name == route.source), None)
        if link is not None:
            link.send(restored, restored_frame, Direction.UPSTREAM, action=route.action)
        return None

    # Backends -> charger.

    async def primary_called(self, upstream: Sender, frame: Frame, message: str | bytes) -> None:
        """The primary's CALL (its 1.6 ids already mapped): its policy, then the lane."""
        assert frame.action is not None
        if self.primary_policy:
            decision = decide(self.primary_policy, frame.action, frame.payload, secondary=False)
            if decision is not Policy.FORWARD:
                reply = policy_reply(self.version, PRIMARY, decision, frame, {})
                self.tap.frame(
                    Direction.PROXY_RESPONSE, reply, parse_frame(reply), action=frame.action
                )
                with contextlib.suppress(ConnectionClosed):
                    await upstream.send(reply)
                return
        await self._submit(PRIMARY, frame, message)

    async def secondary_called(self, link: SecondaryLink, frame: Frame, text: str) -> None:
        """A secondary's CALL: its policy first, then the lane (with a proxy-unique id)."""
        assert frame.action is not None
        backend = link.backend
        decision = decide(backend.policy, frame.action, frame.payload, secondary=True)
        if decision is Policy.FORWARD:
            await self._submit(link.name, frame, link.towards_charger(frame, text))
            return
        reply = policy_reply(self.version, link.name, decision, frame, backend.answers)
        link.send(reply, parse_frame(reply), Direction.PROXY_RESPONSE, action=frame.action)

    async def _submit(self, source: str, frame: Frame, message: str | bytes) -> None:
        deadline = asyncio.get_running_loop().time() + self.call_timeout
        call = self.calls.lane_call(source, frame, message, deadline=deadline)
        if self.lane.submit(call):
            await self._send_call(call)

    # The links' life and their state.

    def start(self) -> list[asyncio.Task[None]]:
        return [
            asyncio.create_task(link.run(), name=f"backend {link.name} {link.charge_point_id!r}")
            for link in self.links
        ]

    async def flush(self) -> None:
        """The charger's session ends: what the secondaries' outboxes hold goes out first."""
        await asyncio.gather(*(link.flush() for link in self.links))

    def replay_backlogs(self) -> dict[str, tuple[int, float | None]]:
        """Each secondary's replay backlog: messages waiting, when the oldest arrived."""
        return {link.name: (link.queue.depth, link.queue.oldest) for link in self.links}

    def update_state(self) -> None:
        backends = {PRIMARY: self.state.upstream or "none"}
        backends.update((link.name, link.state) for link in self.links)
        self.state.backends = backends

    def changed(self) -> None:
        self.update_state()
        self._state_changed(self.state)
