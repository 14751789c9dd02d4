"""The result document (JSON) and the tables printed from it. Pure: no I/O.

The document::

    {"benchmark": "oye-proxy", "format": 1, "time": "20250601T120000Z", "quick": false,
     "machine": {...}, "params": {...},
     "scenarios": {"latency": [...], "throughput": [...], "capacity": [...],
                   "injection": [...], "ingestion": [...], "overload": [...],
                   "profiles": {...}},
     "targets": [{"target", "wanted", "measured", "met"}], "oye": {...}}

A scenario that was not run is absent from ``scenarios``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bench.baseline import OYE, OYE_THROUGHPUT, evaluate

FORMAT = 1
REQUIRED = ("benchmark", "format", "time", "quick", "machine", "params", "scenarios", "targets")


def document(
    *,
    time: str,
    quick: bool,
    machine: dict[str, Any],
    params: dict[str, Any],
    scenarios: dict[str, Any],
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "benchmark": "oye-proxy",
        "format": FORMAT,
        "time": time,
        "quick": quick,
        "machine": machine,
        "params": params,
        "scenarios": scenarios,
    }
    doc["targets"] = evaluate(doc)
    doc["oye"] = OYE
    return doc


def check_document(doc: dict[str, Any]) -> list[str]:
    """What is missing or wrong in a document (empty: it has the documented shape)."""
    problems = [f"missing {key!r}" for key in REQUIRED if key not in doc]
    if doc.get("format") not in (None, FORMAT):
        problems.append(f"unknown format {doc.get('format')!r}")
    for target in doc.get("targets", []):
        if set(target) != {"target", "wanted", "measured", "met"}:
            problems.append(f"target without the four keys: {target!r}")
    return problems


def fmt(value: float | int | None, digits: int = 2, *, thousands: bool = False) -> str:
    if value is None:
        return "–"
    if thousands:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> str:
    """A Markdown table; ``align`` has one letter per column, ``l`` or ``r`` (default r)."""
    letters = (align or "l" + "r" * (len(header) - 1)).ljust(len(header), "r")
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            str(cell).ljust(w) if a == "l" else str(cell).rjust(w)
            for cell, w, a in zip(cells, widths, letters, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(
        ("-" * (w + 2)) if a == "l" else ("-" * (w + 1) + ":")
        for w, a in zip(widths, letters, strict=True)
    )
    return "\n".join([line(header), rule + "|", *(line(row) for row in rows)])


def _latency(points: list[dict[str, Any]]) -> str:
    rows = []
    for p in points:
        d, x, a = p["direct"], p["proxy"], p["added_ms"]
        rows.append(
            [
                f"{p['chargers']} x {p['rate']:,}/s",
                fmt(d["p50"], 3),
                fmt(x["p50"], 3),
                f"+{fmt(a['p50'], 3)}",
                fmt(d["p90"], 3),
                fmt(x["p90"], 3),
                fmt(d["p99"], 3),
                fmt(x["p99"], 3),
                f"+{fmt(a['p99'], 3)}",
                fmt(d["max"], 1),
                fmt(x["max"], 1),
                fmt(p["achieved_per_second"]["proxy"], thousands=True),
                f"{p['lost']['direct']} / {p['lost']['proxy']}",
                fmt(p.get("relay_core_share"), 2),
                fmt(p.get("cpu_pressure"), 2),
            ]
        )
    header = [
        "load",
        "direct p50",
        "proxy p50",
        "added",
        "direct p90",
        "proxy p90",
        "direct p99",
        "proxy p99",
        "added",
        "direct max",
        "proxy max",
        "proxy answers/s",
        "unanswered d / p",
        "relay cores",
        "CPU pressure",
    ]
    return markdown_table(header, rows)


def _throughput(points: list[dict[str, Any]]) -> str:
    rows = [
        [
            str(p["chargers"]),
            fmt(p["direct_calls_per_second"], thousands=True),
            fmt(p["proxy_calls_per_second"], thousands=True),
            fmt(100 * p["ratio"], 0) + " %" if p["ratio"] is not None else "–",
            fmt(p["latency"]["direct"]["p50"], 3),
            fmt(p["latency"]["proxy"]["p50"], 3),
            fmt(p["latency"]["proxy"]["p99"], 3),
            fmt(p.get("relay_us_per_call"), 0),
            fmt(p.get("csms_us_per_call_direct"), 0),
            fmt(p.get("cpu_pressure"), 2),
            OYE_THROUGHPUT.get(p["chargers"], "–"),
        ]
        for p in points
    ]
    header = [
        "chargers",
        "direct CALL/s",
        "proxy CALL/s",
        "proxy/direct",
        "direct p50 ms",
        "proxy p50 ms",
        "proxy p99 ms",
        "relay µs CPU/CALL",
        "CSMS µs CPU/CALL",
        "CPU pressure",
        "OYE CALL/s (file / mem)",
    ]
    return markdown_table(header, rows)


def _capacity(points: list[dict[str, Any]]) -> str:
    rows = []
    for p in points:
        if p.get("skipped"):
            rows.append([f"{p['chargers']:,}", *["–"] * 8, f"skipped: {p['skipped']}"])
            continue
        rows.append(
            [
                f"{p['chargers']:,}",
                fmt(p["direct_seconds"]),
                fmt(p["proxy_seconds"]),
                "x" + fmt(p["ratio"]) if p["ratio"] is not None else "–",
                f"{p['failed']['direct']} / {p['failed']['proxy']}",
                fmt(p.get("relay_cpu_ms_per_charger")),
                fmt(p["kib_per_charger_after_storm"], 1),
                fmt(p["kib_per_charger_settled"], 1),
                fmt(p["relay_open_files"], thousands=True),
                " / ".join(
                    fmt(p.get("listen_overflows", {}).get(mode), thousands=True)
                    for mode in ("direct", "proxy")
                ),
            ]
        )
    header = [
        "chargers",
        "direct s",
        "proxy s",
        "proxy/direct",
        "failed d / p",
        "relay ms CPU/charger",
        "relay KiB/charger after storm",
        "settled",
        "relay open files",
        "SYN drops d / p",
    ]
    return markdown_table(header, rows)


def _injection(points: list[dict[str, Any]]) -> str:
    rows = []
    for p in points:
        per_second = {
            mode: sorted(r["per_second"] for r in p["runs"][mode]) for mode in ("direct", "proxy")
        }
        rows.append(
            [
                "sequential" if p["concurrency"] == 1 else f"{p['concurrency']} concurrent",
                fmt(p["direct"]["p50"], 3),
                fmt(p["direct"]["p99"], 3),
                fmt(p["proxy"]["p50"], 2),
                fmt(p["proxy"]["p99"], 2),
                fmt(p["proxy"]["max"], 1),
                fmt(per_second["proxy"][len(per_second["proxy"]) // 2], thousands=True),
            ]
        )
    header = [
        "injection",
        "direct p50 ms",
        "direct p99 ms",
        "proxy p50 ms",
        "proxy p99 ms",
        "proxy max ms",
        "proxy requests/s",
    ]
    return markdown_table(header, rows)


def _ingestion(points: list[dict[str, Any]]) -> str:
    floors = {"sqlite": "20,000", "postgres": "10,000"}
    rows = [
        [
            p["store"],
            f"{p['frames']:,}",
            fmt(p["frames_per_second"], thousands=True),
            f"{p['spread'][0]:,.0f}-{p['spread'][1]:,.0f}",
            fmt(p["logger_us_per_frame"], 1) if "logger_us_per_frame" in p else "–",
            floors.get(p["store"], "–"),
        ]
        for p in points
    ]
    return markdown_table(
        [
            "store",
            "frames",
            "frames/s (median)",
            "spread over runs",
            "logger µs CPU/frame",
            "target",
        ],
        rows,
    )


def _overload(points: list[dict[str, Any]]) -> str:
    rows = [
        [
            p["log"],
            fmt(p["seconds"], 0),
            fmt(p["calls_per_second"], thousands=True),
            fmt(p["latency"]["p99"], 2),
            fmt(p["forwarded_frames_per_second"], thousands=True),
            fmt(p["logged_frames_per_second"], thousands=True),
            f"{p['backlog_at_end']:,}",
            fmt(p["catch_up_seconds"], 1),
            f"{p['rows']:,} / {p['frames_sent']:,}",
        ]
        for p in points
    ]
    header = [
        "log",
        "s",
        "CALL/s",
        "p99 ms",
        "frames/s forwarded",
        "rows/s logged meanwhile",
        "backlog at end",
        "caught up in s",
        "rows / frames sent",
    ]
    return markdown_table(header, rows)


def _targets(targets: list[dict[str, Any]]) -> str:
    marks = {True: "met", False: "MISSED", None: "not measured"}
    rows = [[t["target"], t["wanted"], t["measured"] or "–", marks[t["met"]]] for t in targets]
    return markdown_table(["target", "wanted", "measured", ""], rows, "llll")


SECTIONS: dict[str, tuple[str, Callable[[list[dict[str, Any]]], str]]] = {
    "latency": ("Round-trip latency, open loop (ms, medians of runs)", _latency),
    "throughput": ("Closed-loop throughput (medians of runs)", _throughput),
    "capacity": ("Connection storms: time to connect and boot all; relay memory", _capacity),
    "injection": ("Injection round trip (HTTP -> charger -> HTTP)", _injection),
    "ingestion": ("Log ingestion, one logger process", _ingestion),
    "overload": ("Sustained overload of the log (closed loop through the proxy)", _overload),
}


NOTES = (
    "Medians of the runs; proxy and direct alternate within each figure. Unanswered: CALLs "
    "of the measured window still without an answer 5 s after the run (summed over runs). "
    "Relay cores: "
    "the relay's share of one core during the proxy runs (every relay process together "
    "with --relays). µs CPU/CALL: CPU time the "
    "process used per CALL answered (relay: proxy runs, every relay process together; "
    "CSMS: direct runs). CPU pressure: "
    "the share of the time some task waited for a CPU (Linux PSI; near 0 on a quiet "
    "machine, towards 1 when the machine is shared or saturated)."
)


def _relays(count: int) -> str:
    return f", {count} relay processes sharing the port" if count > 1 else ""


def tables(doc: dict[str, Any]) -> str:
    """Every measured scenario as a Markdown table, the OYE figures under each, then the
    targets."""
    machine = doc["machine"]
    parts = [
        f"OYE Proxy benchmarks, {doc['time']}{' (--quick)' if doc['quick'] else ''}: "
        f"{machine.get('cpus')} cores, Python {machine.get('python')}, load average "
        f"{machine.get('load_average_before', ['?'])[0]} before / "
        f"{machine.get('load_average_after', ['?'])[0]} after"
        + _relays(doc.get("params", {}).get("relays", 1))
    ]
    for key, (title, render) in SECTIONS.items():
        points = doc["scenarios"].get(key)
        if not points:
            continue
        parts.append(f"## {title}\n\n{render(points)}\n\n{OYE[key]}")
    parts.append(NOTES)
    parts.append("## Targets (issue 13)\n\n" + _targets(doc["targets"]))
    return "\n\n".join(parts)
