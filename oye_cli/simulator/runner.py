"""One simulated charger's life for ``oye simulate``: connect, boot, beat, charge, reconnect.

::

    runner = ChargerRunner(charger, Plan(charge=True), backoff=Backoff(maximum=30))
    await runner.run(stop)  # until ``stop`` is set; FatalRefusal if retrying cannot help

On each connection: BootNotification until Accepted (again after the ``interval`` the CSMS
gives with Pending or Rejected) — on the first connection and after a reset, not on a
mere reconnection (OCPP lets a charger that was accepted reconnect without booting) —
then a StatusNotification per connector, the session of :attr:`Plan.charge` once, then
Heartbeats and meter values until the connection ends. The CSMS's calls are answered by
the charger's peer meanwhile. An accepted Reset of the whole charger reboots it: the
socket is closed and opened again at once, and the charger boots anew. A refused or lost
connection is retried with :class:`~.reconnect.Backoff`, which starts over once the
charger was accepted and its statuses answered. Every event is one log line naming the charger.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Literal

from ocpp.exceptions import OCPPError
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.frames import CloseCode

from oye_cli.simulator.charger import SimulatedCharger, SimulatorError, cancel_and_wait
from oye_cli.simulator.reconnect import Backoff, describe, is_fatal
from oye_cli.simulator.sessions import report_meter, start_session

log = logging.getLogger("oye.simulate")

#: Seconds before a BootNotification is sent again when the CSMS gave no usable interval.
BOOT_RETRY = 10
#: How often a loop whose interval is 0 (switched off) looks whether it was switched on.
IDLE_RECHECK = 1.0
#: How long a rebooting charger waits for the messages that end its transactions.
REBOOT_SETTLE = 5.0

Outcome = Literal["stopped", "reboot", "lost"]


@dataclass(frozen=True)
class Plan:
    """What the charger does besides answering: ``None`` leaves it to the charger/CSMS."""

    charge: bool = False
    id_tag: str = "OYE-SIM"
    connector: int = 1
    heartbeat: int | None = None
    meter_interval: int | None = None


class FatalRefusal(SimulatorError):
    """The CSMS refused the charger in a way that connecting again cannot fix."""


class ChargerRunner:
    """Runs one :class:`SimulatedCharger` until stopped; see the module docstring."""

    def __init__(self, charger: SimulatedCharger, plan: Plan, *, backoff: Backoff) -> None:
        self.charger = charger
        self.plan = plan
        self.backoff = backoff
        self._booted = False
        self._charged = False
        if plan.meter_interval is not None:
            charger.meter_interval = plan.meter_interval

    @property
    def name(self) -> str:
        return self.charger.charge_point_id

    async def run(self, stop: asyncio.Event) -> None:
        """Connect and stay connected until ``stop`` is set; raises :class:`FatalRefusal`."""
        while not stop.is_set():
            try:
                await self.charger.connect()
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
                if is_fatal(exc):
                    raise FatalRefusal(f"{self.name}: {describe(exc)}") from exc
                await self._pause(stop, f"cannot connect: {describe(exc)}")
                continue
            log.info(
                "%s: connected to %s (%s)",
                self.name,
                self.charger.url,
                self.charger.subprotocol or "no subprotocol",
            )
            outcome = await self._online(stop)
            if outcome == "stopped":
                log.info("%s: stopped", self.name)
                return
            if outcome == "reboot":
                log.info("%s: rebooting after Reset", self.name)
                self.charger.state.reboot()
                self._booted = False
                continue
            connection = self.charger.connection
            await self._pause(
                stop, f"connection lost ({connection.close_code or 'no close frame'})"
            )

    async def _pause(self, stop: asyncio.Event, why: str) -> None:
        delay = self.backoff.next_delay()
        log.warning("%s: %s; again in %.1f s", self.name, why, delay)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await stop.wait()

    async def _online(self, stop: asyncio.Event) -> Outcome:
        """Live on the open connection until it ends, the charger reboots, or ``stop``."""
        charger = self.charger
        charger.reboot_requested.clear()
        live = asyncio.create_task(self._live(), name=f"{self.name} live")
        closed = asyncio.create_task(charger.wait_closed(), name=f"{self.name} closed")
        stopping = asyncio.create_task(stop.wait(), name=f"{self.name} stop")
        reboot = asyncio.create_task(charger.reboot_requested.wait(), name=f"{self.name} reset")
        tasks = {live, closed, stopping, reboot}
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait(tasks)
        if not live.cancelled() and live.exception() is not None:
            self._report_failure(live.exception())
        if stopping in done:
            await charger.close(CloseCode.GOING_AWAY, "charger shutting down")
            return "stopped"
        if reboot in done and closed not in done:
            try:
                async with asyncio.timeout(REBOOT_SETTLE):
                    await charger.settle()
            except TimeoutError:
                log.warning("%s: rebooting before its last messages were answered", self.name)
            await charger.close(CloseCode.GOING_AWAY, "rebooting")
            return "reboot"
        await charger.close()  # ends the peer and its follow-ups
        return "lost"

    def _report_failure(self, exc: BaseException | None) -> None:
        if exc is None or isinstance(exc, ConnectionClosed):
            return
        if isinstance(exc, ExceptionGroup) and all(
            isinstance(e, ConnectionClosed) for e in exc.exceptions
        ):
            return
        log.error("%s: stopped working on this connection: %r", self.name, exc)

    async def _live(self) -> None:
        if not self._booted:
            await self._boot()
        await self._report_statuses()
        self.backoff.reset()  # accepted and answered: the next loss starts from 1 s again
        if self.plan.charge and not self._charged:
            self._charged = True
            await self._quietly("the charging session", self._charge())
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._beat())
            tasks.create_task(self._meter())

    async def _boot(self) -> None:
        """BootNotification until Accepted."""
        fields = {} if self.charger.version == "1.6" else {"reason": self._boot_reason()}
        while True:
            delay: float = BOOT_RETRY
            try:
                result = await self.charger.boot(**fields)
            except TimeoutError:
                log.warning("%s: no answer to BootNotification", self.name)
            except OCPPError as exc:
                log.warning("%s: BootNotification answered with %s", self.name, exc)
            else:
                if result.status == "Accepted":
                    break
                delay = result.interval or BOOT_RETRY
                log.warning("%s: boot %s", self.name, result.status)
            log.info("%s: BootNotification again in %.0f s", self.name, delay)
            await asyncio.sleep(delay)
        self._booted = True
        if self.plan.heartbeat is not None:
            self.charger.heartbeat_interval = self.plan.heartbeat
        log.info(
            "%s: boot accepted; Heartbeat every %d s",
            self.name,
            self.charger.heartbeat_interval,
        )

    def _boot_reason(self) -> str:
        return "RemoteReset" if self.charger.state.resets else "PowerUp"

    async def _report_statuses(self) -> None:
        connectors = self.charger.state.connectors
        if self.charger.version == "1.6":
            whole = "Available" if any(c.operative for c in connectors.values()) else "Unavailable"
            await self._quietly("StatusNotification", self.charger.status(0, whole))
        for connector in list(connectors.values()):
            await self._quietly(
                "StatusNotification", self.charger.status(connector.id, connector.status)
            )

    async def _charge(self) -> None:
        connector = self.charger.state.connector(self.plan.connector)
        if connector is None or connector.transaction is not None:
            return
        status = await start_session(self.charger.peer, connector.id, self.plan.id_tag)
        if status == "Accepted":
            log.info(
                "%s: charging on connector %d with id tag %s",
                self.name,
                connector.id,
                self.plan.id_tag,
            )
        else:
            log.warning(
                "%s: id tag %s refused (%s): not charging", self.name, self.plan.id_tag, status
            )

    async def _beat(self) -> None:
        while True:
            interval = self.charger.heartbeat_interval
            await asyncio.sleep(interval if interval > 0 else IDLE_RECHECK)
            if interval > 0:
                await self._quietly("Heartbeat", self.charger.heartbeat())

    async def _meter(self) -> None:
        clock = asyncio.get_running_loop().time
        last = clock()
        while True:
            interval = self.charger.meter_interval
            await asyncio.sleep(interval if interval > 0 else IDLE_RECHECK)
            now = clock()
            elapsed, last = now - last, now
            if interval > 0:
                await self._quietly("meter values", report_meter(self.charger.peer, elapsed))

    async def _quietly(self, what: str, work: Awaitable[object]) -> None:
        """Send something periodic; an error answer or no answer is logged, not fatal."""
        try:
            await work
        except TimeoutError:
            log.warning("%s: no answer to %s", self.name, what)
        except OCPPError as exc:
            log.warning("%s: %s answered with %s", self.name, what, exc)
