"""Injected CALLs: checked against the charger's OCPP version, sent on the shared lane,
answered from the charger's reply, and never shown to the CSMS."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from oye_relay.authorization import remote_start_tag
from oye_relay.lane import CallLane, LaneCall, Origin, Reply
from oye_relay.metrics import RelayMetrics
from oye_relay.reports import FollowUps
from oye_shared.frames import MessageType, call_frame
from oye_shared.inject import InjectOutcome, InjectReply, InjectRequest
from oye_shared.schemas import (
    UnknownActionError,
    check_action,
    csms_to_charger_actions,
    follow_up_report,
    validate_request,
)
from oye_shared.state import OCPP_VERSIONS

log = logging.getLogger(__name__)

INJECTED_ID_PREFIX = "oye-"
REMEMBERED_INJECTIONS = 256


def new_injected_id() -> str:
    """``oye-`` and 32 hex digits: 36 characters, the OCPP maximum."""
    return INJECTED_ID_PREFIX + os.urandom(16).hex()


def check_request(subprotocol: str | None, request: InjectRequest) -> InjectReply | None:
    """Refuse what the charger's version cannot take; None when it may be sent."""
    version = OCPP_VERSIONS.get(subprotocol or "")
    if not request.validate_payload:
        return None
    if version is None:
        return InjectReply(
            outcome=InjectOutcome.INVALID,
            detail="the charger negotiated no OCPP version to validate against; "
            'send with "validate": false',
        )
    try:
        check_action(version, request.action)
    except UnknownActionError as exc:
        return InjectReply(outcome=InjectOutcome.INVALID, ocpp_version=version, detail=str(exc))
    if request.action not in csms_to_charger_actions(version):
        return InjectReply(
            outcome=InjectOutcome.INVALID,
            ocpp_version=version,
            detail=f"{request.action} is sent by chargers in OCPP {version}, not to them",
        )
    problems = validate_request(version, request.action, request.payload)
    if problems:
        return InjectReply(
            outcome=InjectOutcome.INVALID,
            ocpp_version=version,
            detail=f"the payload is not a valid OCPP {version} {request.action} request",
            problems=problems,
        )
    return None


class Injector:
    """Runs the owner's CALLs for one charger."""

    def __init__(
        self,
        *,
        lane: CallLane,
        follow_ups: FollowUps,
        send_call: Callable[[LaneCall], Awaitable[None]],
        default_timeout: float,
        on_remote_start: Callable[[str], None],
        metrics: RelayMetrics | None = None,
    ) -> None:
        self.lane = lane
        self.follow_ups = follow_ups
        self.send_call = send_call
        self.default_timeout = default_timeout
        self.on_remote_start = on_remote_start
        self.metrics = metrics
        #: Injected ids and their actions, kept after the answer or timeout so that a late
        #: reply is still recognised (and swallowed).
        self.recent: OrderedDict[str, str] = OrderedDict()

    def is_injected(self, message_id: str) -> bool:
        return message_id in self.recent

    async def inject(self, request: InjectRequest, subprotocol: str | None) -> InjectReply:
        refusal = check_request(subprotocol, request)
        if refusal is not None:
            return refusal
        version = OCPP_VERSIONS.get(subprotocol or "")
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + (request.timeout or self.default_timeout)
        message_id = new_injected_id()
        call = LaneCall(
            message_id=message_id,
            action=request.action,
            text=call_frame(message_id, request.action, request.payload),
            origin=Origin.INJECTED,
            deadline=deadline,
        )
        self._remember(message_id, request.action)
        if tag := remote_start_tag(request.action, request.payload):
            self.on_remote_start(tag)  # the owner vouches for this tag, offline too
        collector = None
        report_action = follow_up_report(version, request.action) if version else None
        request_id = request.payload.get("requestId")
        if report_action and isinstance(request_id, int):
            collector = self.follow_ups.expect(report_action, request_id, deadline)
        if self.lane.submit(call):
            await self.send_call(call)
        if not request.wait:
            return InjectReply(outcome=InjectOutcome.SENT, message_id=message_id)
        reply = await self._await_answer(call)
        if self.metrics is not None:
            if reply is not None:
                self.metrics.answered("injected", request.action, loop.time() - started)
            elif loop.time() >= deadline:  # not a charger that went away
                self.metrics.injection_timed_out(request.action)
        if reply is None:
            if collector is not None:
                self.follow_ups.forget(collector)
            return InjectReply(
                outcome=InjectOutcome.TIMEOUT,
                message_id=message_id,
                detail=f"the charger did not answer {request.action} in time",
            )
        frame = reply.frame
        if frame.message_type is not MessageType.CALLRESULT:
            if collector is not None:
                self.follow_ups.forget(collector)
            return InjectReply(
                outcome=InjectOutcome.CALL_ERROR,
                message_id=message_id,
                ocpp_version=version,
                frame=reply.text,
                error_code=frame.error_code,
                error_description=frame.error_description,
                error_details=frame.error_details,
            )
        reports = None
        if collector is not None:
            if (frame.payload or {}).get("status") != "Accepted":
                self.follow_ups.forget(collector)  # no report will follow
            elif request.collect:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(deadline):
                        await collector.complete.wait()
                self.follow_ups.forget(collector)
            if request.collect:
                reports = list(collector.reports)
        return InjectReply(
            outcome=InjectOutcome.RESULT,
            message_id=message_id,
            ocpp_version=version,
            frame=reply.text,
            reports=reports,
        )

    async def _await_answer(self, call: LaneCall) -> Reply | None:
        try:
            async with asyncio.timeout_at(call.deadline):
                return await asyncio.shield(call.answer)
        except TimeoutError:
            self.lane.withdraw(call)  # if it was never sent, it never will be
            return None

    def _remember(self, message_id: str, action: str) -> None:
        self.recent[message_id] = action
        if len(self.recent) > REMEMBERED_INJECTIONS:
            self.recent.popitem(last=False)
