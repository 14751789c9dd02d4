"""Statistics of the benchmarks: percentiles, medians of runs, proxy against direct.

Pure functions, no I/O. Latencies are milliseconds. A percentile is the nearest-rank one
(the smallest sample with at least ``q`` % of the samples at or below it): every figure
reported is a latency that was actually measured.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields


def percentile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of samples sorted ascending."""
    if not ordered:
        raise ValueError("no samples")
    if not 0 < q <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {q}")
    rank = math.ceil(q / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


@dataclass(frozen=True, slots=True)
class Latency:
    """One run's latency distribution, in milliseconds."""

    count: int
    p50: float
    p90: float
    p99: float
    max: float

    def as_dict(self) -> dict[str, float]:
        return {key: round(value, 4) for key, value in asdict(self).items()}


def summarize(samples_ms: Iterable[float]) -> Latency:
    """Percentiles of one run's samples."""
    ordered = sorted(samples_ms)
    return Latency(
        count=len(ordered),
        p50=percentile(ordered, 50),
        p90=percentile(ordered, 90),
        p99=percentile(ordered, 99),
        max=ordered[-1],
    )


def median_latency(runs: Sequence[Latency]) -> Latency:
    """Each figure's median over several runs (a run's p99 next to the other runs' p99)."""
    if not runs:
        raise ValueError("no runs")
    values = {
        f.name: statistics.median(getattr(run, f.name) for run in runs) for f in fields(Latency)
    }
    values["count"] = int(values["count"])
    return Latency(**values)


def median(values: Iterable[float]) -> float:
    collected = list(values)
    if not collected:
        raise ValueError("no values")
    return float(statistics.median(collected))


def ratio(proxy: float, direct: float) -> float | None:
    """proxy / direct; None when direct is zero (nothing to compare with)."""
    return proxy / direct if direct else None


def added(proxy: Latency, direct: Latency) -> dict[str, float]:
    """What the proxy adds to each latency figure (medians of runs), in milliseconds."""
    return {
        name: round(getattr(proxy, name) - getattr(direct, name), 4)
        for name in ("p50", "p90", "p99", "max")
    }


def spread(values: Sequence[float]) -> tuple[float, float]:
    """(lowest, highest) of several runs: how much the machine's noise moved a figure."""
    if not values:
        raise ValueError("no values")
    return min(values), max(values)


def per_second(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def median_of_dicts(runs: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The median of each key over several runs (every run has the same keys)."""
    if not runs:
        raise ValueError("no runs")
    return {key: median(run[key] for run in runs) for key in runs[0]}
