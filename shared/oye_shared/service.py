"""The same ``main()`` for every service: settings, logging, signals, run, exit.

Settings are read from the environment (a bad value exits at once, naming the
variable), SIGINT and SIGTERM set the ``stop`` event the service's ``run`` waits for,
and an error the service declares fatal at start exits with its message, not a traceback.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable
from typing import Protocol

from oye_shared.logs import configure_logging
from oye_shared.settings import Settings, SettingsError, load_settings


class ServiceRun(Protocol):
    def __call__(self, settings: Settings, *, stop: asyncio.Event) -> Awaitable[None]: ...


def run_service(run: ServiceRun, *, fatal: tuple[type[Exception], ...] = ()) -> None:
    try:
        settings = load_settings()
    except SettingsError as exc:
        raise SystemExit(str(exc)) from None
    configure_logging(settings.log_level)
    try:
        asyncio.run(_until_signalled(run, settings))
    except fatal as exc:
        raise SystemExit(str(exc)) from None


async def _until_signalled(run: ServiceRun, settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await run(settings, stop=stop)
