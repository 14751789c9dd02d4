"""Connecting a charger's upstream leg to the CSMS, and deciding what a failure means.

The upstream offers the CSMS exactly the subprotocols the charger offered, in its order,
and passes the charger's ``Authorization`` header through, so the CSMS decides as if the
charger were talking to it directly.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from websockets.exceptions import InvalidHandshake

from oye_relay.keepalive import Keepalive
from oye_relay.legs import Leg

# Raised by the handshake; callers import it from here.
from oye_relay.upstream_handshake import UpstreamRefused as UpstreamRefused
from oye_relay.upstream_handshake import open_leg

log = logging.getLogger(__name__)

#: CSMS close codes that mean "this connection is over" rather than "I went away".
#: The charger is closed with the same code; any other end of the upstream is a drop,
#: and the relay reconnects while the charger stays.
DELIBERATE_CLOSE_CODES = frozenset({1000, 1002, 1003, 1007, 1008, 1009, 1010})


@dataclass(frozen=True, slots=True)
class UpstreamOptions:
    """How to reach the CSMS; built once from the settings."""

    base_url: str
    ssl_context: ssl.SSLContext | None
    open_timeout: float
    #: The relay's one keepalive (keepalive.py); the leg is watched once open.
    keepalive: Keepalive
    max_size: int


def make_ssl_context(url: str, *, verify: bool, ca_file: Path | None) -> ssl.SSLContext | None:
    """The TLS context for a wss:// upstream: verified by default."""
    if not url.startswith("wss://"):
        return None
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    if not verify:
        log.warning("upstream TLS certificates are NOT verified (OYE_UPSTREAM_TLS_VERIFY=false)")
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class UpstreamUnreachable(Exception):
    """The CSMS could not be reached: refused, timed out, bad TLS, broken handshake."""


async def open_upstream(
    options: UpstreamOptions,
    charge_point_id: str,
    *,
    subprotocols: Sequence[str],
    authorization: str | None,
    user_agent: str | None,
) -> Leg:
    """Open the upstream leg (upstream_handshake.py: the relay's own handshake), or raise
    :class:`UpstreamRefused` / :class:`UpstreamUnreachable`."""
    try:
        leg = await open_leg(
            options.base_url,
            charge_point_id,
            ssl_context=options.ssl_context,
            open_timeout=options.open_timeout,
            max_size=options.max_size,
            subprotocols=subprotocols,
            authorization=authorization,
            user_agent=user_agent,
        )
    except (OSError, TimeoutError, InvalidHandshake, ssl.SSLError) as exc:
        raise UpstreamUnreachable(f"{type(exc).__name__}: {exc}") from exc
    options.keepalive.watch(leg)
    return leg


class Backoff:
    """Capped exponential backoff with jitter; :meth:`reset` after a success."""

    def __init__(self, *, initial: float = 0.5, maximum: float = 30.0) -> None:
        self.initial = min(initial, maximum)
        self.maximum = maximum
        self._next = self.initial

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        return delay * random.uniform(0.8, 1.2)

    def reset(self) -> None:
        self._next = self.initial


@dataclass(frozen=True, slots=True)
class CloseCharger:
    """The upstream will not come back as it was: close the charger with this."""

    code: int
    reason: str


async def reopen_upstream(
    current_options: Callable[[], UpstreamOptions | None],
    charge_point_id: str,
    *,
    subprotocol: str | None,
    offer: Sequence[str],
    authorization: str | None,
    user_agent: str | None,
    backoff_max: float,
) -> Leg | CloseCharger | None:
    """Open a dropped upstream again, with backoff, under the configuration of the
    moment: the new leg; how to close the charger when the CSMS refuses it for good or
    now speaks another subprotocol; or None once forwarding is off."""
    backoff = Backoff(maximum=backoff_max)
    while True:
        options = current_options()
        if options is None:
            log.info("%r: forwarding is off now; answering here", charge_point_id)
            return None
        try:
            upstream = await open_upstream(
                options,
                charge_point_id,
                subprotocols=offer,
                authorization=authorization,
                user_agent=user_agent,
            )
        except UpstreamRefused as refusal:
            if refusal.is_final:
                log.warning(
                    "%r: CSMS refused the reconnection (HTTP %d); closing the charger",
                    charge_point_id,
                    refusal.status,
                )
                return CloseCharger(1008, f"CSMS refused: HTTP {refusal.status}")
            log.warning("%r: CSMS answered HTTP %d", charge_point_id, refusal.status)
        except UpstreamUnreachable as exc:
            log.info("%r: CSMS unreachable (%s)", charge_point_id, exc)
        else:
            if upstream.subprotocol != subprotocol:
                await upstream.close(1002, "subprotocol changed")
                return CloseCharger(1002, "CSMS no longer speaks this subprotocol")
            return upstream
        await asyncio.sleep(backoff.next_delay())
