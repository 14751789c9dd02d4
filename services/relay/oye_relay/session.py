"""One charger connection: two pumps, supervised, and the upstream leg kept alive.

The charger pump carries charger -> CSMS; the upstream loop (re)connects the CSMS and
carries CSMS -> charger. The session ends when the charger's socket ends; the upstream
is then closed with the matching code. A CSMS that closes deliberately closes the charger
the same way; a CSMS that drops is reconnected with backoff while the charger stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from oye_relay.calls import PendingCalls
from oye_relay.traffic import TrafficTap, inspect, track
from oye_relay.upstream import (
    DELIBERATE_CLOSE_CODES,
    Backoff,
    UpstreamOptions,
    UpstreamRefused,
    UpstreamUnreachable,
    open_upstream,
)
from oye_shared.subjects import Direction, EventKind

log = logging.getLogger(__name__)

REPLACED_REASON = "replaced by a new connection"


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

    def __init__(
        self,
        *,
        charger: ServerConnection,
        charge_point_id: str,
        tap: TrafficTap,
        upstream: ClientConnection | None,
        upstream_options: UpstreamOptions | None,
        offered_subprotocols: Sequence[str],
        authorization: str | None,
        user_agent: str | None,
        backoff_max: float,
    ) -> None:
        self.charger = charger
        self.charge_point_id = charge_point_id
        self.tap = tap
        self.upstream = upstream
        self.upstream_options = upstream_options
        self.offered_subprotocols = list(offered_subprotocols)
        self.authorization = authorization
        self.user_agent = user_agent
        self.backoff_max = backoff_max
        # CALLs the charger made (the CSMS answers) and CALLs the CSMS made (the charger answers).
        self.charger_calls = PendingCalls()
        self.csms_calls = PendingCalls()
        self._upstream_ready = asyncio.Event()
        if upstream is not None:
            self._upstream_ready.set()

    @property
    def subprotocol(self) -> str | None:
        return self.charger.subprotocol

    async def run(self) -> None:
        """Relay until the charger's socket ends."""
        upstream_task = asyncio.create_task(
            self._keep_upstream(), name=f"upstream {self.charge_point_id!r}"
        )
        try:
            await self._pump_charger()
        finally:
            upstream_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await upstream_task
            if self.upstream is not None:
                code = mirror_close_code(self.charger.close_code)
                await self.upstream.close(code, self.charger.close_reason or "")

    async def close(self, code: int, reason: str) -> None:
        await self.charger.close(code, reason)

    async def wait_upstream(self) -> None:
        """Wait until the upstream leg is connected (tests and metrics use this)."""
        await self._upstream_ready.wait()

    async def _pump_charger(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in self.charger:
                parsed = inspect(message)
                action = track(parsed, self.charger_calls, self.csms_calls)
                self.tap.frame(Direction.UPSTREAM, message, parsed, action=action)
                await self._send_upstream(message)

    async def _send_upstream(self, message: str | bytes) -> None:
        upstream = self.upstream
        if upstream is None:
            if self.upstream_options is not None:
                log.warning(
                    "%r: CSMS not connected; frame published but not forwarded",
                    self.charge_point_id,
                )
            return
        try:
            await upstream.send(message)
        except ConnectionClosed:
            log.warning("%r: CSMS dropped while forwarding a frame", self.charge_point_id)

    async def _keep_upstream(self) -> None:
        """Pump CSMS -> charger; reconnect a dropped CSMS while the charger stays."""
        if self.upstream_options is None:
            return
        backoff = Backoff(maximum=self.backoff_max)
        while True:
            if self.upstream is None and not await self._reconnect(backoff):
                return
            assert self.upstream is not None
            upstream = self.upstream
            await self._pump_upstream(upstream)
            if self.charger.state is not State.OPEN:
                return  # the charger is gone; run() closes the upstream
            self.upstream = None
            self._upstream_ready.clear()
            code = upstream.close_code
            if upstream.protocol.close_rcvd is not None and code in DELIBERATE_CLOSE_CODES:
                log.info("%r: CSMS closed the connection (%s)", self.charge_point_id, code)
                await self.charger.close(mirror_close_code(code), upstream.close_reason or "")
                return
            log.warning("%r: CSMS connection lost (%s); reconnecting", self.charge_point_id, code)
            self.tap.event(EventKind.UPSTREAM_DOWN, code=code, reason=upstream.close_reason)

    async def _reconnect(self, backoff: Backoff) -> bool:
        """Open the upstream again; False when the charger must go instead."""
        assert self.upstream_options is not None
        # Once the charger has a subprotocol, only that one will do.
        offer = [self.subprotocol] if self.subprotocol else self.offered_subprotocols
        while True:
            try:
                upstream = await open_upstream(
                    self.upstream_options,
                    self.charge_point_id,
                    subprotocols=offer,
                    authorization=self.authorization,
                    user_agent=self.user_agent,
                )
            except UpstreamRefused as refusal:
                if refusal.is_final:
                    log.warning(
                        "%r: CSMS refused the reconnection (HTTP %d); closing the charger",
                        self.charge_point_id,
                        refusal.status,
                    )
                    await self.charger.close(1008, f"CSMS refused: HTTP {refusal.status}")
                    return False
                log.warning("%r: CSMS answered HTTP %d", self.charge_point_id, refusal.status)
            except UpstreamUnreachable as exc:
                log.info("%r: CSMS unreachable (%s)", self.charge_point_id, exc)
            else:
                if upstream.subprotocol != self.subprotocol:
                    await upstream.close(1002, "subprotocol changed")
                    await self.charger.close(1002, "CSMS no longer speaks this subprotocol")
                    return False
                self.upstream = upstream
                self._upstream_ready.set()
                backoff.reset()
                self.tap.event(EventKind.UPSTREAM_UP)
                log.info("%r: CSMS connected", self.charge_point_id)
                return True
            await asyncio.sleep(backoff.next_delay())

    async def _pump_upstream(self, upstream: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in upstream:
                parsed = inspect(message)
                action = track(parsed, self.csms_calls, self.charger_calls)
                self.tap.frame(Direction.DOWNSTREAM, message, parsed, action=action)
                await self.charger.send(message)
