"""Follow-up reports of injected requests (2.0.1+): who asked, and which have arrived.

GetChargingProfiles is answered twice: a CALLRESULT, then ReportChargingProfiles CALLs
with the same ``requestId``, ``tbc`` true until the last. When the owner injected the
request, the CSMS never asked for those reports: the relay answers them itself and keeps
them for the owner, until the last one or the deadline.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False, slots=True)
class ReportCollector:
    report_action: str
    request_id: int
    deadline: float
    reports: list[dict[str, Any]] = field(default_factory=list)
    complete: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, payload: dict[str, Any]) -> None:
        self.reports.append(payload)
        if not payload.get("tbc", False):
            self.complete.set()


class FollowUps:
    """Active collectors of one charger, by (report action, requestId)."""

    def __init__(self) -> None:
        self._active: dict[tuple[str, int], ReportCollector] = {}

    def __bool__(self) -> bool:
        """Whether any injected request waits for reports (nearly never)."""
        return bool(self._active)

    def expect(self, report_action: str, request_id: int, deadline: float) -> ReportCollector:
        collector = ReportCollector(report_action, request_id, deadline)
        self._active[(report_action, request_id)] = collector
        return collector

    def claim(self, action: str, payload: dict[str, Any], now: float) -> ReportCollector | None:
        """The collector this charger CALL belongs to, if an injected request asked for it."""
        request_id = payload.get("requestId")
        if not isinstance(request_id, int):
            return None
        collector = self._active.get((action, request_id))
        if collector is None:
            return None
        if now > collector.deadline:
            self.forget(collector)
            return None
        return collector

    def forget(self, collector: ReportCollector) -> None:
        key = (collector.report_action, collector.request_id)
        if self._active.get(key) is collector:
            del self._active[key]
