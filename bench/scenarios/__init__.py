"""What the benchmarks measure, one module per scenario; each returns plain JSON data.

Every scenario that compares runs the same load through the proxy and straight to the
echo CSMS ("direct") in the same run, alternating which goes first, and reports the
median of the runs (see :func:`bench.params.order`).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.loadgen import Job
from bench.params import Params
from bench.stack import Stack
from bench.stats import median
from bench.workers import split


@dataclass
class Context:
    stack: Stack
    workdir: Path
    params: Params
    say: Callable[[str], None]
    pg_dsn: str | None = None
    profile: bool = False

    def url(self, mode: str) -> str:
        return self.stack.relay_url if mode == "proxy" else self.stack.direct_url

    def jobs(self, job: Job, processes: int | None = None) -> list[Job]:
        """The job shared out among the generator processes."""
        return split(job, processes or self.params.generators)

    @staticmethod
    def prefix(name: str) -> str:
        """Charger ids unique to one run (so each run's frames are its own in the log)."""
        return f"{name}-{secrets.token_hex(2)}-"


def usage_medians(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """From each run's ``usage``: the relay's CPU per CALL and share of a core (proxy
    runs), the CSMS's CPU per CALL (direct runs), and the CPU pressure (every run)."""

    def med(mode: str, *path: str) -> float | None:
        values = []
        for run in runs.get(mode, []):
            value: Any = run.get("usage")
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            if isinstance(value, int | float):
                values.append(float(value))
        return round(median(values), 3) if values else None

    pressures = [med(mode, "cpu_pressure") for mode in runs]
    known = [p for p in pressures if p is not None]
    return {
        "relay_us_per_call": med("proxy", "us_per_call", "relay"),
        "relay_core_share": med("proxy", "core_share", "relay"),
        "csms_us_per_call_direct": med("direct", "us_per_call", "csms"),
        "cpu_pressure": round(median(known), 3) if known else None,
    }
