"""Several simulated chargers at once, for ``oye simulate``: one runner each, one stop for all.

:func:`run_fleet` runs until ``stop`` is set (then every charger closes its socket within
:data:`STOP_DEADLINE` seconds) or until every charger was refused for good. Each charger
logs one line per frame (``oye.simulate.frames``, see :mod:`.console`) and per event
(``oye.simulate``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from oye_cli.simulator.charger import SimulatedCharger, Version, cancel_and_wait, charger_url
from oye_cli.simulator.console import FrameDescriber
from oye_cli.simulator.frame_log import FrameLog, Listener, RecordedFrame
from oye_cli.simulator.reconnect import Backoff
from oye_cli.simulator.runner import ChargerRunner, FatalRefusal, Plan

log = logging.getLogger("oye.simulate")
frame_log = logging.getLogger("oye.simulate.frames")

#: Seconds the chargers have to close their sockets once stopped.
STOP_DEADLINE = 5.0
#: Frames each charger keeps in memory (for waiting on them), however long it runs.
FRAMES_KEPT = 200


@dataclass(frozen=True)
class FleetConfig:
    """What to simulate; ``password`` (Basic auth, user = charger id) is never shown."""

    base_url: str
    ids: list[str]
    version: Version = "1.6"
    password: str | None = field(default=None, repr=False)
    connectors: int = 1
    max_current: int = 32
    vendor: str = "OYE"
    model: str = "Simulator"
    plan: Plan = field(default_factory=Plan)
    reconnect_max: float = 30.0
    log_frames: bool = True
    frame_width: int | None = 200


def charger_ids(base: str, count: int) -> list[str]:
    """``[base]`` for one charger, ``base-1`` ... ``base-N`` for several."""
    if count < 1:
        raise ValueError("count must be at least 1")
    return [base] if count == 1 else [f"{base}-{n}" for n in range(1, count + 1)]


def _frame_printer(charge_point_id: str, width: int | None) -> Listener:
    describer = FrameDescriber(width=width)

    def print_frame(recorded: RecordedFrame) -> None:
        frame_log.info("%s %s", charge_point_id, describer.describe(recorded))

    return print_frame


def build_charger(config: FleetConfig, charge_point_id: str) -> SimulatedCharger:
    listener = _frame_printer(charge_point_id, config.frame_width) if config.log_frames else None
    return SimulatedCharger(
        charger_url(config.base_url, charge_point_id),
        charge_point_id,
        version=config.version,
        password=config.password,
        connectors=config.connectors,
        max_current=config.max_current,
        vendor=config.vendor,
        model=config.model,
        frames=FrameLog(limit=FRAMES_KEPT, listener=listener),
    )


async def run_fleet(config: FleetConfig, stop: asyncio.Event) -> int:
    """Run every charger until ``stop``; the exit status (1 if any was refused for good)."""
    runners = [
        ChargerRunner(
            build_charger(config, cp),
            config.plan,
            backoff=Backoff(initial=min(1.0, config.reconnect_max), maximum=config.reconnect_max),
        )
        for cp in config.ids
    ]
    log.info(
        "simulating %d OCPP %s charger(s) at %s: %s",
        len(runners),
        config.version,
        config.base_url,
        ", ".join(config.ids) if len(config.ids) <= 5 else f"{config.ids[0]} ... {config.ids[-1]}",
    )
    tasks = [asyncio.create_task(r.run(stop), name=r.name) for r in runners]
    everything = asyncio.create_task(_all_ended(tasks))
    stopping = asyncio.create_task(_set(stop))
    try:
        await asyncio.wait({everything, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not everything.done():
            try:
                async with asyncio.timeout(STOP_DEADLINE):
                    await asyncio.shield(everything)
            except TimeoutError:
                log.warning("not every charger closed within %.0f s", STOP_DEADLINE)
    finally:
        await cancel_and_wait([*tasks, stopping, everything])
    status = 0
    for task in tasks:
        if task.cancelled():
            continue
        exc = task.exception()
        if isinstance(exc, FatalRefusal):
            log.error("%s; giving up", exc)
            status = 1
        elif exc is not None:
            log.error("%s failed", task.get_name(), exc_info=exc)
            status = 1
    return status


async def _all_ended(tasks: list[asyncio.Task[None]]) -> None:
    await asyncio.wait(tasks)


async def _set(event: asyncio.Event) -> None:
    await event.wait()
