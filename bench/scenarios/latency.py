"""Round-trip latency of charger CALLs at a fixed offered rate (open loop).

Each charger sends on its own schedule, whether or not the last answer came (the
chargers' schedules are staggered so the total rate is even). The latency of a CALL is
from just before its send to its answer; the generator's lag behind the schedule is
reported too, so a generator that could not keep up shows.
"""

from __future__ import annotations

from typing import Any

from bench.loadgen import Job
from bench.params import order
from bench.scenarios import Context, usage_medians
from bench.stack import usage_between
from bench.stats import Latency, added, median, median_latency, summarize
from bench.workers import merged, total, workers


async def run(ctx: Context) -> list[dict[str, Any]]:
    points = []
    for chargers, rate in ctx.params.rates:
        runs: dict[str, list[dict[str, Any]]] = {"proxy": [], "direct": []}
        for n in range(ctx.params.runs):
            for mode in order(n):
                await ctx.stack.quiesce()
                result = await one_run(ctx, mode, chargers, rate)
                runs[mode].append(result)
                ctx.say(
                    f"latency {chargers}x{rate}/s {mode:<6} run {n + 1}: "
                    f"p50 {result['latency']['p50']:.3f} ms, p99 {result['latency']['p99']:.3f} ms"
                    f", {result['achieved_per_second']:.0f} answers/s, lost {result['lost']}"
                )
        points.append(point(chargers, rate, runs))
    return points


async def one_run(ctx: Context, mode: str, chargers: int, rate: int) -> dict[str, Any]:
    p = ctx.params
    job = Job(
        kind="open",
        url=ctx.url(mode),
        prefix=ctx.prefix(f"lat{mode[0]}"),
        count=chargers,
        total=chargers,
        rate=rate / chargers,
        duration=p.latency_warmup + p.latency_seconds,
        warmup=p.latency_warmup,
    )
    async with workers(ctx.jobs(job), ctx.workdir) as group:
        before = ctx.stack.usage()
        results = await group.run(limit=job.duration + 120)
        after = ctx.stack.usage()
    found = summarize_run(results)
    found["usage"] = usage_between(before, after, found["answered"] - chargers)
    return found


def summarize_run(results: list[dict[str, Any]]) -> dict[str, Any]:
    samples = [us / 1000 for us in merged(results, "latencies_us")]
    lags = [us / 1000 for us in merged(results, "lags_us")]
    window = max(result["window"] for result in results)
    latency = summarize(samples) if samples else Latency(0, 0.0, 0.0, 0.0, 0.0)
    return {
        "latency": latency.as_dict(),
        "sent": int(total(results, "sent")),
        "answered": int(total(results, "answered")),
        "lost": int(total(results, "lost")),
        # Answers that arrived inside the window: a saturated proxy falls behind the rate.
        "achieved_per_second": total(results, "completed_in_window") / window if window else 0.0,
        "schedule_lag_ms": summarize(lags).as_dict() if lags else None,
    }


def point(chargers: int, rate: int, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    medians = {
        mode: median_latency([Latency(**r["latency"]) for r in mode_runs])
        for mode, mode_runs in runs.items()
    }
    return {
        "chargers": chargers,
        "rate": rate,
        "proxy": medians["proxy"].as_dict(),
        "direct": medians["direct"].as_dict(),
        "added_ms": added(medians["proxy"], medians["direct"]),
        "lost": {mode: sum(r["lost"] for r in mode_runs) for mode, mode_runs in runs.items()},
        "achieved_per_second": {
            mode: median(r["achieved_per_second"] for r in mode_runs)
            for mode, mode_runs in runs.items()
        },
        **usage_medians(runs),
        "runs": runs,
    }
