"""The benchmarks' pure parts: statistics, tables, the result document, the targets."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench import baseline, report
from bench.csms import answer
from bench.http import HttpError, build_request, parse_head
from bench.loadgen import Job, head
from bench.params import QUICK, order, parse_counts, parse_rates, parse_scenarios
from bench.profile import frame_name, summarize
from bench.stack import Usage, usage_between
from bench.stats import Latency, added, median_latency, percentile, ratio
from bench.stats import summarize as stats
from bench.workers import split

pytestmark = pytest.mark.unit


def test_percentiles_are_nearest_rank_samples() -> None:
    """p50 of 1..100 is 50, p99 is 99, p100 is the maximum: always a measured value."""
    ordered = [float(n) for n in range(1, 101)]
    assert percentile(ordered, 50) == 50
    assert percentile(ordered, 99) == 99
    assert percentile(ordered, 100) == 100
    assert percentile([7.0], 1) == 7


@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1), st.floats(0.01, 100))
def test_a_percentile_is_one_of_the_samples_and_monotonic(values: list[float], q: float) -> None:
    """Whatever the samples, a percentile is one of them and never above a higher one."""
    ordered = sorted(values)
    assert percentile(ordered, q) in ordered
    assert percentile(ordered, q) <= percentile(ordered, 100)


@pytest.mark.parametrize("q", [0, -1, 101])
def test_percentiles_outside_0_to_100_are_refused(q: float) -> None:
    """A percentile of 0 or above 100 is a mistake, not a figure."""
    with pytest.raises(ValueError, match="percentile"):
        percentile([1.0], q)


def test_a_run_is_summarized_into_percentiles_and_max() -> None:
    """summarize gives count, p50, p90, p99 and max of one run's samples."""
    summary = stats([5.0, 1.0, 3.0, 2.0, 4.0])
    assert summary == Latency(count=5, p50=3.0, p90=5.0, p99=5.0, max=5.0)


def test_runs_are_combined_figure_by_figure_with_the_median() -> None:
    """The p99 of several runs is the median of their p99s (not of all samples)."""
    runs = [Latency(10, 1.0, 2.0, 3.0, 9.0), Latency(10, 2.0, 3.0, 30.0, 40.0)]
    runs.append(Latency(10, 3.0, 4.0, 5.0, 6.0))
    assert median_latency(runs) == Latency(10, 2.0, 3.0, 5.0, 9.0)


def test_added_latency_and_ratio_compare_proxy_with_direct() -> None:
    """added is proxy minus direct per figure; ratio is proxy over direct."""
    proxy, direct = Latency(1, 0.5, 0.7, 1.5, 3.0), Latency(1, 0.2, 0.3, 0.5, 1.0)
    assert added(proxy, direct) == {"p50": 0.3, "p90": 0.4, "p99": 1.0, "max": 2.0}
    assert ratio(50.0, 100.0) == 0.5
    assert ratio(1.0, 0.0) is None


def test_proxy_and_direct_alternate_which_goes_first() -> None:
    """Run 0 starts with the proxy, run 1 with direct, and so on (drift cancels)."""
    assert [order(n) for n in range(3)] == [
        ("proxy", "direct"),
        ("direct", "proxy"),
        ("proxy", "direct"),
    ]


def test_options_parse_rates_counts_and_scenarios() -> None:
    """100x500,1000x5000 are (chargers, total rate) pairs; unknown scenarios are refused."""
    assert parse_rates("100x500, 1000x5000") == ((100, 500), (1000, 5000))
    assert parse_counts("1,10,100") == (1, 10, 100)
    assert parse_scenarios("latency,capacity") == ("latency", "capacity")
    with pytest.raises(ValueError, match="CHARGERS"):
        parse_rates("100-500")
    with pytest.raises(ValueError, match="unknown scenario"):
        parse_scenarios("latency,speed")
    assert QUICK.runs == 1


def test_chargers_are_shared_out_among_generators_in_blocks() -> None:
    """Ten chargers over three generators: 4, 3, 3, contiguous, the total kept."""
    jobs = split(Job(kind="open", first=0, count=10, total=10), 3)
    assert [(j.first, j.count, j.total) for j in jobs] == [(0, 4, 10), (4, 3, 10), (7, 3, 10)]
    assert len(split(Job(kind="open", count=2, total=2), 8)) == 2


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ('[3,"17",{}]', (3, "17")),
        ('[2, "oye-abc", "GetConfiguration", {"key": []}]', (2, "oye-abc")),
        ('[4,"9","NotImplemented","",{}]', (4, "9")),
        ("not a frame", None),
    ],
)
def test_the_load_generator_reads_type_and_id_without_parsing(
    frame: str, expected: tuple[int, str] | None
) -> None:
    """Message type and id come from the head of the frame, spaces or not."""
    assert head(frame) == expected


def test_the_echo_csms_accepts_boots_and_answers_every_call() -> None:
    """BootNotification gets Accepted, any other CALL {}, anything else nothing."""
    boot = json.loads(str(answer('[2,"b1","BootNotification",{"chargePointVendor":"x"}]')))
    assert boot[:2] == [3, "b1"]
    assert boot[2]["status"] == "Accepted"
    assert answer('[2,"7","MeterValues",{"connectorId":1}]') == '[3,"7",{}]'
    assert answer('[3,"7",{}]') is None


def test_http_requests_are_keep_alive_with_a_length() -> None:
    """A POST carries Host, its headers and Content-Length, then the body."""
    raw = build_request("POST", "h:1", "/api/x", b"{}", {"Authorization": "Basic eA=="})
    assert raw == (
        b"POST /api/x HTTP/1.1\r\nHost: h:1\r\nAuthorization: Basic eA==\r\n"
        b"Content-Length: 2\r\n\r\n{}"
    )
    status, headers = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\n")
    assert (status, headers) == (200, {"content-length": "5", "x-a": "b"})
    with pytest.raises(HttpError):
        parse_head(b"SSH-2.0-OpenSSH\r\n\r\n")


def test_usage_gives_core_shares_cpu_per_call_and_pressure() -> None:
    """Two snapshots two seconds apart: shares of a core, µs per CALL, CPU pressure."""
    before = Usage(at=10.0, cpu={"relay": 1.0, "csms": 2.0}, pressure_us=0)
    after = Usage(at=12.0, cpu={"relay": 2.0, "csms": 2.5}, pressure_us=500_000)
    found = usage_between(before, after, calls=1000)
    assert found["core_share"] == {"relay": 0.5, "csms": 0.25}
    assert found["us_per_call"] == {"relay": 1000.0, "csms": 500.0}
    assert found["cpu_pressure"] == 0.25


def test_profiles_are_summarized_by_self_and_inclusive_share() -> None:
    """Collapsed stacks: the leaf gets self time, every frame on the stack inclusive time."""
    raw = "\n".join(
        [
            'process 1:"oye relay";run (/x/site-packages/websockets/asyncio/connection.py:10);'
            "write (/usr/lib/python3.11/asyncio/selector_events.py:5) 3",
            'process 1:"oye relay";run (/x/site-packages/websockets/asyncio/connection.py:10) 1',
        ]
    )
    found = summarize(raw)
    assert found["samples"] == 4
    assert found["self"][0] == ["asyncio/selector_events.py:write", 75.0]
    assert ["websockets/asyncio/connection.py:run", 100.0] in found["inclusive"]
    assert frame_name("f (/w/services/relay/oye_relay/session.py:3)") == (
        "oye_relay/session.py:f",
        "oye_relay/session.py",
    )


def _latency_point(chargers: int, rate: int, p50: float, p99: float) -> dict[str, Any]:
    direct = Latency(100, 0.2, 0.3, 0.5, 1.0).as_dict()
    proxy = Latency(100, 0.2 + p50, 0.5, 0.5 + p99, 2.0).as_dict()
    return {
        "chargers": chargers,
        "rate": rate,
        "proxy": proxy,
        "direct": direct,
        "added_ms": {"p50": p50, "p90": 0.2, "p99": p99, "max": 1.0},
        "lost": {"proxy": 0, "direct": 0},
        "achieved_per_second": {"proxy": float(rate), "direct": float(rate)},
        "relay_core_share": 0.3,
        "cpu_pressure": 0.1,
        "runs": {"proxy": [], "direct": []},
    }


def _document(scenarios: dict[str, Any]) -> dict[str, Any]:
    return report.document(
        time="20250601T120000Z",
        quick=False,
        machine={"cpus": 2, "python": "3.11", "load_average_before": [0.1]},
        params={},
        scenarios=scenarios,
    )


def test_the_result_document_has_its_documented_shape() -> None:
    """Every key the JSON promises is there, with one entry per target."""
    doc = _document({"latency": [_latency_point(100, 500, 0.2, 1.0)]})
    assert report.check_document(doc) == []
    assert len(doc["targets"]) == len(baseline.TARGETS)
    assert json.loads(json.dumps(doc)) == doc
    assert report.check_document({"format": 99}) != []


def test_targets_are_met_missed_or_not_measured() -> None:
    """The latency target is judged on the added p50 and p99; unmeasured ones are None."""
    met = _document({"latency": [_latency_point(100, 500, 0.2, 1.0)]})["targets"][0]
    missed = _document({"latency": [_latency_point(100, 500, 0.5, 1.0)]})["targets"][0]
    assert met["met"] is True
    assert missed["met"] is False
    assert "+0.500 ms p50" in missed["measured"]
    unmeasured = _document({})["targets"]
    assert all(t["met"] is None and t["measured"] is None for t in unmeasured)


def test_the_overload_target_needs_forwarding_unaffected_and_a_complete_log() -> None:
    """A stopped log must not slow forwarding, and both runs must end complete."""

    def run(log: str, rate: float, complete: bool) -> dict[str, Any]:
        return {"log": log, "calls_per_second": rate, "complete": complete}

    good = _document({"overload": [run("running", 1000, True), run("stopped", 1050, True)]})
    lossy = _document({"overload": [run("running", 1000, True), run("stopped", 1050, False)]})
    stalled = _document({"overload": [run("running", 1000, True), run("stopped", 100, True)]})
    assert good["targets"][-1]["met"] is True
    assert lossy["targets"][-1]["met"] is False
    assert stalled["targets"][-1]["met"] is False


def test_markdown_tables_line_up() -> None:
    """Every row has the header's width; numbers are right-aligned by default."""
    table = report.markdown_table(["name", "value"], [["a", "1"], ["bbb", "22"]])
    lines = table.splitlines()
    assert lines == [
        "| name | value |",
        "|------|------:|",
        "| a    |     1 |",
        "| bbb  |    22 |",
    ]


def test_the_printed_tables_show_the_oye_figures_and_the_targets() -> None:
    """The latency table, the OYE baseline beneath it, then the targets with verdicts."""
    text = report.tables(_document({"latency": [_latency_point(100, 500, 0.2, 1.0)]}))
    assert "| 100 x 500/s" in text
    assert "OYE v1.1.0, 100 x 500/s" in text
    assert "## Targets (issue 13)" in text
    assert "| met" in text
    assert "not measured" in text
