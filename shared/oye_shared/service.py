"""The same ``main()`` for every service: settings, logging, signals, run, exit.

Settings are read from the environment (a bad value exits at once, naming the
variable), the event loop is uvloop's unless ``OYE_EVENT_LOOP`` says otherwise
(:mod:`oye_shared.event_loop`), SIGINT and SIGTERM set the ``stop`` event the service's
``run`` waits for, and an error the service declares fatal at start exits with its
message, not a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable
from typing import Protocol

from oye_shared.event_loop import loop_factory
from oye_shared.logs import configure_logging
from oye_shared.settings import Settings, SettingsError, load_settings

log = logging.getLogger(__name__)


class ServiceRun(Protocol):
    def __call__(self, settings: Settings, *, stop: asyncio.Event) -> Awaitable[None]: ...


def run_service(run: ServiceRun, *, fatal: tuple[type[Exception], ...] = ()) -> None:
    try:
        settings = load_settings()
        loop_name, new_loop = loop_factory(settings.event_loop)
    except SettingsError as exc:
        raise SystemExit(str(exc)) from None
    configure_logging(settings.log_level)
    log.debug("event loop: %s", loop_name)
    try:
        with asyncio.Runner(loop_factory=new_loop) as runner:
            runner.run(_until_signalled(run, settings))
    except fatal as exc:
        raise SystemExit(str(exc)) from None


async def _until_signalled(run: ServiceRun, settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await run(settings, stop=stop)
