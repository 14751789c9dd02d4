"""When and whether a simulated charger connects again. Pure.

:class:`Backoff` gives capped exponential delays (1, 2, 4, ... seconds up to ``maximum``,
each shortened by up to ``jitter`` of itself so that many chargers do not return in step)
and starts over once the charger was accepted again. :func:`is_fatal` tells a refusal that
retrying cannot fix (a wrong password, a bad URL, an untrusted certificate) from trouble
that passes (refused connection, timeout, 404/503 while a proxy restarts, a dropped link).
"""

from __future__ import annotations

import random
import ssl
from collections.abc import Callable
from http import HTTPStatus

from websockets.exceptions import InvalidStatus, InvalidURI

#: HTTP statuses of a refused handshake that retrying cannot fix.
FATAL_STATUSES = frozenset({HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN})


class Backoff:
    """Delays between attempts; :meth:`reset` after a success."""

    def __init__(
        self,
        *,
        initial: float = 1.0,
        maximum: float = 30.0,
        factor: float = 2.0,
        jitter: float = 0.2,
        random_fraction: Callable[[], float] = random.random,
    ) -> None:
        if initial <= 0 or maximum < initial or factor < 1 or not 0 <= jitter < 1:
            raise ValueError("need 0 < initial <= maximum, factor >= 1, 0 <= jitter < 1")
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self._random = random_fraction
        self._next = initial

    def next_delay(self) -> float:
        """The wait before the next attempt; each call waits longer, up to ``maximum``."""
        delay = self._next
        self._next = min(self._next * self.factor, self.maximum)
        return delay * (1 - self.jitter * self._random())

    def reset(self) -> None:
        self._next = self.initial


def is_fatal(exc: BaseException) -> bool:
    """Whether connecting again cannot help (the user has to change something)."""
    if isinstance(exc, InvalidStatus):
        return exc.response.status_code in FATAL_STATUSES
    return isinstance(exc, InvalidURI | ssl.SSLCertVerificationError)


def describe(exc: BaseException) -> str:
    """A short reason for a log line, with a hint where there is an obvious one."""
    if isinstance(exc, InvalidStatus):
        code = exc.response.status_code
        hint = ""
        if code == HTTPStatus.UNAUTHORIZED:
            hint = " (wrong or missing password: set OYE_SIM_PASSWORD)"
        elif code == HTTPStatus.NOT_FOUND:
            hint = " (is the URL's path right?)"
        return f"refused with HTTP {code}{hint}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens there)"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
