"""The event loop the services run on: uvloop when it is installed, else asyncio's own.

uvloop (libuv, in C) reads, writes and schedules callbacks for a fraction of what
asyncio's pure-Python selector loop spends; for the relay, which does little more per
frame than read, write and publish, that was about a tenth of its CPU per forwarded
CALL (docs/PERFORMANCE.md). ``OYE_EVENT_LOOP=asyncio`` keeps asyncio's loop;
``uvloop`` insists on uvloop (a start-up error when it is missing); ``auto`` (the
default) takes uvloop when it can, as on Windows it cannot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Literal

from oye_shared.settings import SettingsError

EventLoopChoice = Literal["auto", "uvloop", "asyncio"]
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory(choice: EventLoopChoice) -> tuple[str, LoopFactory | None]:
    """The loop's name and its factory for ``asyncio.Runner`` (None: asyncio's own)."""
    if choice == "asyncio":
        return "asyncio", None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise SettingsError("OYE_EVENT_LOOP: uvloop is not installed") from None
        return "asyncio", None
    return "uvloop", uvloop.new_event_loop
