"""The proxy's own limits on one charger connection: the persistent limit and the failsafe.

The persistent limit (set through the API, stored in NATS KV) is re-applied whenever the
charger may have lost it: at connect (unless it boots first), when a boot is accepted, and
when it accepts a CSMS ClearChargingProfile that may have removed it. The failsafe limit
(``OYE_FAILSAFE_LIMIT``) caps every session while a configured CSMS is unreachable. Both
go to the charger as injected calls through the session's lane; their answers are logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from oye_shared.frames import Frame, MessageType
from oye_shared.inject import InjectReply, InjectRequest
from oye_shared.limits import LimitIds, clear_may_remove_ours, clear_profile, set_profile

log = logging.getLogger(__name__)

#: After a connect, how long to wait for the charger's first CALL before re-applying the
#: persistent limit anyway (a first BootNotification leaves it to the boot's answer).
LIMIT_CONNECT_GRACE = 5.0


async def no_stored_limit() -> float | None:
    return None


def is_accepted_boot(action: str | None, answer: Frame) -> bool:
    """Whether ``answer`` accepts a BootNotification."""
    return action == "BootNotification" and _accepted(answer)


def _accepted(answer: Frame) -> bool:
    return (
        answer.message_type is MessageType.CALLRESULT
        and isinstance(answer.payload, dict)
        and answer.payload.get("status") == "Accepted"
    )


class LimitKeeper:
    __slots__ = (
        "_clears",
        "_ended",
        "_failsafe_applied",
        "_first_action",
        "_first_call",
        "_first_called",
        "_inject",
        "_spawn",
        "_version",
        "charge_point_id",
        "failsafe_limit",
        "limit_ids",
        "stored_limit",
    )

    def __init__(
        self,
        *,
        charge_point_id: str,
        version: Callable[[], str | None],
        inject: Callable[[InjectRequest], Awaitable[InjectReply]],
        spawn: Callable[[Awaitable[Any]], None],
        ended: Callable[[], bool],
        limit_ids: LimitIds | None,
        failsafe_limit: float | None,
        stored_limit: Callable[[], Awaitable[float | None]],
    ) -> None:
        self.charge_point_id = charge_point_id
        self._version = version
        self._inject = inject
        self._spawn = spawn
        self._ended = ended
        self.limit_ids = limit_ids
        self.failsafe_limit = failsafe_limit
        self.stored_limit = stored_limit
        self._failsafe_applied = False
        self._first_called = False
        self._first_action: str | None = None
        #: after_connect() waiting for the first CALL (a future: an Event holds a deque).
        self._first_call: asyncio.Future[None] | None = None
        # CSMS ClearChargingProfile calls that may remove the persistent limit.
        self._clears: set[str] | None = None  # made with the first (they are rare)

    # What the session tells the keeper.

    def charger_called(self, action: str | None) -> None:
        if not self._first_called:
            self._first_called = True
            self._first_action = action
            if self._first_call is not None and not self._first_call.done():
                self._first_call.set_result(None)

    async def after_connect(self) -> None:
        """Re-apply at connect, unless the charger boots first (then the boot's answer does)."""
        if not self._first_called:
            self._first_call = asyncio.get_running_loop().create_future()
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(LIMIT_CONNECT_GRACE):
                        await self._first_call
            finally:
                self._first_call = None
        if self._first_action != "BootNotification":
            self.reapply("connected")

    def csms_called(self, frame: Frame) -> None:
        """A CSMS CALL on its way to the charger: remember clears that may remove ours."""
        version = self._version()
        if (
            frame.action == "ClearChargingProfile"
            and self.limit_ids is not None
            and version is not None
            and clear_may_remove_ours(version, frame.payload, self.limit_ids)
        ):
            if self._clears is None:
                self._clears = set()
            self._clears.add(frame.message_id)

    def charger_replied(self, frame: Frame) -> None:
        """The charger answered a CSMS CALL: re-apply if it accepted a clear of ours."""
        if self._clears is not None and frame.message_id in self._clears:
            self._clears.discard(frame.message_id)
            if _accepted(frame):
                self.reapply("the CSMS cleared it")

    def boot_accepted(self, *, by_proxy: bool, csms_configured: bool) -> None:
        self.reapply(f"boot accepted by the {'proxy' if by_proxy else 'CSMS'}")
        if by_proxy and csms_configured:  # a CSMS is configured but unreachable
            self.apply_failsafe()

    # The persistent limit.

    def reapply(self, why: str) -> None:
        if self.limit_ids is not None and not self._ended():
            self._spawn(self._apply_stored(why))

    async def _apply_stored(self, why: str) -> InjectReply | None:
        """Send the stored charger-wide limit through the lane (its answer is swallowed)."""
        version = self._version()
        if self.limit_ids is None or version is None:
            return None
        try:
            limit = await self.stored_limit()
        except Exception as exc:  # NATS down: the next connect or boot tries again
            log.warning("%r: cannot read the stored limit: %r", self.charge_point_id, exc)
            return None
        if limit is None or self._ended():
            return None
        log.info("%r: re-applying the limit of %g A (%s)", self.charge_point_id, limit, why)
        reply = await self._inject(set_profile(version, self.limit_ids, max_power=limit))
        log.info("%r: the limit got %s", self.charge_point_id, reply.outcome)
        return reply

    # The failsafe.

    def apply_failsafe(self) -> None:
        """CSMS unreachable: limit every session to OYE_FAILSAFE_LIMIT until it is back."""
        version = self._version()
        if self.failsafe_limit is None or self.limit_ids is None or version is None:
            return
        if self._failsafe_applied or self._ended():
            return
        self._failsafe_applied = True
        log.info(
            "%r: applying the failsafe limit of %g A", self.charge_point_id, self.failsafe_limit
        )
        request = set_profile(
            version, self.limit_ids, session_limit=self.failsafe_limit, failsafe=True
        )
        self._spawn(self._inject(request))

    def remove_failsafe(self) -> None:
        version = self._version()
        if not self._failsafe_applied or self.limit_ids is None or version is None:
            return
        self._failsafe_applied = False
        log.info("%r: CSMS back; removing the failsafe limit", self.charge_point_id)
        self._spawn(self._inject(clear_profile(version, self.limit_ids.failsafe_id)))
