"""What a benchmark run measures and for how long: the full run and ``--quick``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

SCENARIOS = ("latency", "throughput", "capacity", "injection", "ingestion", "overload")


@dataclass(frozen=True, slots=True)
class Params:
    #: Runs of each proxy/direct pair (alternated: proxy first, then direct first, ...).
    runs: int = 5
    #: Open loop: (chargers, CALL/s in total), each for ``latency_seconds`` after a warm-up.
    rates: tuple[tuple[int, int], ...] = ((100, 500), (100, 1000), (1000, 5000))
    latency_seconds: float = 10.0
    latency_warmup: float = 1.0
    #: Closed loop: chargers, each sending its next CALL when the answer arrives.
    throughput_chargers: tuple[int, ...] = (1, 10, 100)
    throughput_seconds: float = 5.0
    throughput_warmup: float = 0.5
    #: Connection storms: chargers that connect and boot at once, handshakes in flight.
    capacity_sizes: tuple[int, ...] = (1000, 5000, 9000)
    capacity_runs: int = 3
    storm_concurrency: int = 200
    #: Memory "when settled": the stack idle, and at least this long after the storm.
    settle_seconds: float = 10.0
    #: Injection: HTTP round trips in all (shared out over the connections), after a few
    #: per connection not counted; fewer runs (each request costs the API a password hash).
    inject_calls: int = 200
    inject_concurrent: int = 10
    inject_warmup: int = 5
    inject_runs: int = 3
    #: Log ingestion: frames in the stream, drained by one logger process into each store.
    ingest_frames: int = 100_000
    ingest_runs: int = 3
    #: Sustained overload: closed loop through the proxy for this long, the log behind.
    overload_seconds: float = 60.0
    overload_chargers: int = 100
    #: Load-generator processes per run (the chargers shared out among them).
    generators: int = 1
    #: Relay processes sharing the chargers' port (``oye up``'s OYE_RELAY_PROCESSES).
    relays: int = 1

    def replace(self, **changes: object) -> Params:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


FULL = Params()
QUICK = Params(
    runs=1,
    rates=((100, 500), (100, 1000)),
    latency_seconds=2.0,
    latency_warmup=0.5,
    throughput_seconds=1.5,
    capacity_sizes=(200, 1000),
    capacity_runs=1,
    settle_seconds=2.0,
    inject_calls=50,
    inject_warmup=2,
    inject_runs=1,
    ingest_frames=10_000,
    ingest_runs=1,
    overload_seconds=5.0,
)


def parse_rates(text: str) -> tuple[tuple[int, int], ...]:
    """``100x500,1000x5000`` -> ((100, 500), (1000, 5000)): chargers x CALL/s in total."""
    rates = []
    for part in text.split(","):
        chargers, _, total = part.strip().partition("x")
        if not chargers.isdigit() or not total.isdigit() or int(chargers) == 0:
            raise ValueError(f"not CHARGERSxCALLS_PER_SECOND: {part!r}")
        rates.append((int(chargers), int(total)))
    return tuple(rates)


def parse_counts(text: str) -> tuple[int, ...]:
    """``1,10,100`` -> (1, 10, 100)."""
    counts = tuple(int(part) for part in text.split(","))
    if any(count <= 0 for count in counts):
        raise ValueError(f"counts must be positive: {text!r}")
    return counts


def parse_positive(text: str) -> int:
    """``2`` -> 2; zero or less is refused."""
    value = int(text)
    if value <= 0:
        raise ValueError(f"must be positive: {text!r}")
    return value


def parse_scenarios(text: str) -> tuple[str, ...]:
    chosen = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [name for name in chosen if name not in SCENARIOS]
    if unknown or not chosen:
        raise ValueError(
            f"unknown scenario {unknown or text!r}; choose from {', '.join(SCENARIOS)}"
        )
    return chosen


def order(run: int) -> tuple[str, str]:
    """Which side goes first in a run: proxy, direct, direct, proxy, ... (drift cancels)."""
    return ("proxy", "direct") if run % 2 == 0 else ("direct", "proxy")
