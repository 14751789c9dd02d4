"""Who may charge while the proxy answers in the CSMS's place.

An id tag (1.6) or id token (2.0.1+) is Accepted offline when automatic charging is on
(``autoChargeEnabled``), when it is on the local allow-list (``OYE_OFFLINE_ID_TAGS``), or
when the owner recently injected a remote start with it; otherwise it is Invalid.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

#: How long an injected remote start vouches for its tag.
REMOTE_START_WINDOW = 600.0


def remote_start_tag(action: str, payload: Mapping[str, Any]) -> str | None:
    """The tag an injected RemoteStartTransaction / RequestStartTransaction names."""
    if action == "RemoteStartTransaction":
        tag = payload.get("idTag")
    elif action == "RequestStartTransaction":
        tag = (payload.get("idToken") or {}).get("idToken")
    else:
        return None
    return tag if isinstance(tag, str) else None


class OfflineAuthorization:
    """The decision for one charger; call it with a tag."""

    def __init__(
        self,
        *,
        allowed: frozenset[str],
        auto_charge: Callable[[], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.allowed = allowed
        self.auto_charge = auto_charge
        self.clock = clock
        self._remote_starts: dict[str, float] = {}

    def remote_started(self, tag: str) -> None:
        self._remote_starts[tag] = self.clock() + REMOTE_START_WINDOW

    def __call__(self, tag: str) -> bool:
        if self.auto_charge() or tag in self.allowed:
            return True
        expires = self._remote_starts.get(tag)
        return expires is not None and self.clock() < expires
