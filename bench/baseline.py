"""The bar: the original OYE's figures on this kind of machine, and the targets of issue 13.

Pure data and one pure function, :func:`evaluate`, which checks a result document
(:func:`bench.report.document`) against the targets. A target whose figures were not
measured in the run is reported as ``met: None``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: The original OYE (v1.1.0) on this kind of 2-core machine, Python echo CSMS and load
#: generator (from issue 13), by scenario, as the tables print them.
OYE = {
    "latency": (
        "OYE v1.1.0, 100 x 500/s: direct p50 0.22 ms, p99 0.4-0.6 ms; OYE with file SQLite "
        "saturates at ~350 CALL/s (p50 2.3 s); with in-memory SQLite it adds 0.49 ms at p50 "
        "and ~2.1 ms at p99."
    ),
    "throughput": (
        "OYE v1.1.0: direct 5,600 CALL/s with 1 charger; OYE 343 (file SQLite) / 1,186 "
        "(in-memory) with 1 charger, ~1,170 at best with 10 or 100."
    ),
    "capacity": (
        "OYE v1.1.0: 1,000 chargers take 10-13 s to boot instead of 0.3 s (it loses the "
        "first frame of every new connection); 40-60 KB per charger right after 1,000-5,000 "
        "connect, 6-11 KB once settled."
    ),
    "injection": "OYE v1.1.0: no figure in the issue.",
    "ingestion": (
        "OYE v1.1.0: under a sustained overload its log loses 27-42 % of the rows while "
        "answers wait behind the writes."
    ),
    "overload": (
        "OYE v1.1.0: under a sustained overload its log loses 27-42 % of the rows while "
        "answers wait behind the writes."
    ),
}

#: Figures the tables put beside ours, by scenario key.
OYE_THROUGHPUT = {1: "343 / 1,186", 10: "~1,170", 100: "~1,170"}
OYE_DIRECT_THROUGHPUT_1 = 5600


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    wanted: str
    #: Reads the document: (what was measured, as text; met?) or None if not measured.
    check: Callable[[dict[str, Any]], tuple[str, bool] | None]


def _point(doc: dict[str, Any], scenario: str, **match: Any) -> dict[str, Any] | None:
    for point in doc.get("scenarios", {}).get(scenario) or []:
        if all(point.get(key) == value for key, value in match.items()):
            return dict(point)
    return None


def _latency_added(doc: dict[str, Any]) -> tuple[str, bool] | None:
    point = _point(doc, "latency", chargers=100, rate=500)
    if point is None:
        return None
    p50, p99 = point["added_ms"]["p50"], point["added_ms"]["p99"]
    return f"+{p50:.3f} ms p50, +{p99:.3f} ms p99", p50 <= 0.3 and p99 <= 1.5


def _closed_one(doc: dict[str, Any]) -> tuple[str, bool] | None:
    point = _point(doc, "throughput", chargers=1)
    if point is None or point["ratio"] is None:
        return None
    return f"{100 * point['ratio']:.0f} % of direct", point["ratio"] >= 0.45


def _closed_ten(doc: dict[str, Any]) -> tuple[str, bool] | None:
    point = _point(doc, "throughput", chargers=10)
    if point is None:
        return None
    rate = point["proxy_calls_per_second"]
    return f"{rate:,.0f} CALL/s", rate >= 5000


def _thousand(doc: dict[str, Any]) -> tuple[str, bool] | None:
    point = _point(doc, "latency", chargers=1000, rate=5000)
    if point is None:
        return None
    achieved = point["achieved_per_second"]["proxy"]
    p99 = point["proxy"]["p99"]
    sustained = achieved >= 0.98 * 5000 and point["lost"]["proxy"] == 0
    return (
        f"{achieved:,.0f} answers/s, p99 {p99:.2f} ms, unanswered {point['lost']['proxy']}",
        sustained and p99 <= 10,
    )


def _storm(doc: dict[str, Any]) -> tuple[str, bool] | None:
    point = _point(doc, "capacity", chargers=9000)
    if point is None or point.get("skipped") or point["ratio"] is None:
        return None
    lost = point["failed"]["proxy"]
    return (
        f"{point['proxy_seconds']:.2f} s vs {point['direct_seconds']:.2f} s direct "
        f"(x{point['ratio']:.2f}), failed {lost}",
        point["ratio"] <= 2 and lost == 0,
    )


def _memory(doc: dict[str, Any]) -> tuple[str, bool] | None:
    point = _point(doc, "capacity", chargers=9000)
    if point is None or point.get("kib_per_charger_settled") is None:
        return None
    settled = point["kib_per_charger_settled"]
    return f"{settled:.1f} KiB per charger settled", settled * 1.024 <= 20


def _injection(doc: dict[str, Any]) -> tuple[str, bool] | None:
    point = _point(doc, "injection", concurrency=1)
    if point is None:
        return None
    p50, p99 = point["proxy"]["p50"], point["proxy"]["p99"]
    return f"p50 {p50:.2f} ms, p99 {p99:.2f} ms", p50 <= 2 and p99 <= 10


def _ingest(store: str, floor: int) -> Callable[[dict[str, Any]], tuple[str, bool] | None]:
    def check(doc: dict[str, Any]) -> tuple[str, bool] | None:
        point = _point(doc, "ingestion", store=store)
        if point is None:
            return None
        rate = point["frames_per_second"]
        return f"{rate:,.0f} frames/s", rate >= floor

    return check


def _overload(doc: dict[str, Any]) -> tuple[str, bool] | None:
    running = _point(doc, "overload", log="running")
    stopped = _point(doc, "overload", log="stopped")
    if running is None or stopped is None:
        return None
    # Within the noise of a run: had forwarding waited for the log, a stopped log would
    # have stalled it outright.
    unaffected = stopped["calls_per_second"] >= 0.8 * running["calls_per_second"]
    complete = running["complete"] and stopped["complete"]
    return (
        f"{stopped['calls_per_second']:,.0f} CALL/s with the log stopped vs "
        f"{running['calls_per_second']:,.0f} running; complete: {complete}",
        unaffected and complete,
    )


TARGETS = (
    Target("latency added at 100 x 500/s", "p50 <= 0.3 ms, p99 <= 1.5 ms", _latency_added),
    Target("closed loop, 1 charger", ">= 45 % of direct", _closed_one),
    Target("closed loop, 10 chargers", ">= 5,000 CALL/s", _closed_ten),
    Target("1,000 chargers x 5,000 CALL/s", "sustained, p99 <= 10 ms", _thousand),
    Target("9,000 chargers on one relay", "booted within 2x direct, none lost", _storm),
    Target("relay memory at 9,000", "<= 20 KB per charger settled", _memory),
    Target("injection, sequential", "p50 <= 2 ms, p99 <= 10 ms", _injection),
    Target("ingestion into SQLite", ">= 20,000 frames/s", _ingest("sqlite", 20_000)),
    Target("ingestion into PostgreSQL", ">= 10,000 frames/s", _ingest("postgres", 10_000)),
    Target(
        "log under sustained overload",
        "forwarding never waits for the log; the log ends complete",
        _overload,
    ),
)


def evaluate(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with what was measured and whether it is met (None: not measured)."""
    out = []
    for target in TARGETS:
        found = target.check(doc)
        out.append(
            {
                "target": target.name,
                "wanted": target.wanted,
                "measured": found[0] if found else None,
                "met": found[1] if found else None,
            }
        )
    return out
