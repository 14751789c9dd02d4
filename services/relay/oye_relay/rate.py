"""How many CALLs a charger may send: a token bucket, and how long a flood may last (pure).

A charger may send ``rate`` CALLs per second on average and bursts of ``2 * rate``. A CALL
over the rate is answered with a CALLERROR and not forwarded; a charger that is still over
its rate ``disconnect_after`` seconds after it first went over (with no calm second in
between) is disconnected. Replies and other frames are never limited: they answer someone
else's CALL.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Seconds without a refused CALL that end a flood.
CALM = 1.0


@dataclass(slots=True)
class CallRate:
    rate: float
    disconnect_after: float
    burst: float = 0.0
    _tokens: float = field(default=-1.0, repr=False)
    _last: float = field(default=0.0, repr=False)
    #: When the current flood began: refusals with no calm second in between.
    flooding_since: float | None = None
    _last_refused: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self.burst = self.burst or 2 * self.rate
        self._tokens = self.burst

    def allow(self, now: float) -> bool:
        """Whether a CALL arriving at ``now`` (monotonic seconds) is within the rate."""
        if self.take(now):
            return True
        if self.flooding_since is None or now - self._last_refused > CALM:
            self.flooding_since = now
        self._last_refused = now
        return False

    def take(self, now: float) -> bool:
        """Like :meth:`allow`, but a CALL over the rate is not counted as refused yet
        (the session then refuses it with :meth:`allow`, where it can wait)."""
        if self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def persists(self, now: float) -> bool:
        """Whether the charger has been over its rate for too long: disconnect it."""
        if self.flooding_since is None or now - self._last_refused > CALM:
            return False
        return now - self.flooding_since >= self.disconnect_after
