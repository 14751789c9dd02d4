"""Closed-loop throughput: each charger sends its next CALL as soon as the answer arrives.

CALLs answered per second during the measured window (after a warm-up), proxy and direct
alternated, medians of the runs. With ``--profile`` the relay is then sampled with py-spy
under the largest of these loads, in a run of its own (sampling slows it down a little).
"""

from __future__ import annotations

from typing import Any

from bench import profile
from bench.loadgen import Job
from bench.params import order
from bench.scenarios import Context, usage_medians
from bench.stack import usage_between
from bench.stats import Latency, median, median_latency, ratio, summarize
from bench.workers import merged, total, workers


async def run(ctx: Context) -> list[dict[str, Any]]:
    points = []
    for chargers in ctx.params.throughput_chargers:
        runs: dict[str, list[dict[str, Any]]] = {"proxy": [], "direct": []}
        for n in range(ctx.params.runs):
            for mode in order(n):
                await ctx.stack.quiesce()
                result = await one_run(ctx, mode, chargers)
                runs[mode].append(result)
                ctx.say(
                    f"closed loop {chargers:>3} chargers {mode:<6} run {n + 1}: "
                    f"{result['calls_per_second']:,.0f} CALL/s, "
                    f"p50 {result['latency']['p50']:.3f} ms"
                )
        points.append(point(chargers, runs))
    return points


async def one_run(
    ctx: Context, mode: str, chargers: int, *, profile_pid: int | None = None
) -> dict[str, Any]:
    p = ctx.params
    job = Job(
        kind="closed",
        url=ctx.url(mode),
        prefix=ctx.prefix(f"thr{mode[0]}"),
        count=chargers,
        total=chargers,
        duration=p.throughput_warmup + p.throughput_seconds,
        warmup=p.throughput_warmup,
    )
    async with workers(ctx.jobs(job), ctx.workdir) as group:
        sampling = None
        if profile_pid is not None:
            sampling = profile.start(profile_pid, p.throughput_seconds, ctx.workdir / "relay")
        before = ctx.stack.usage()
        results = await group.run(limit=job.duration + 120)
        after = ctx.stack.usage()
        if sampling is not None:
            await sampling
    found = summarize_run(results)
    found["usage"] = usage_between(before, after, int(total(results, "answered")) - chargers)
    return found


def summarize_run(results: list[dict[str, Any]]) -> dict[str, Any]:
    samples = [us / 1000 for us in merged(results, "latencies_us")]
    window = max(result["window"] for result in results)
    completed = int(total(results, "completed_in_window"))
    return {
        "calls_per_second": completed / window if window else 0.0,
        "latency": (summarize(samples) if samples else Latency(0, 0, 0, 0, 0)).as_dict(),
        "stuck": int(sum(result["errors"].get("stuck", 0) for result in results)),
    }


def point(chargers: int, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    rates = {mode: median(r["calls_per_second"] for r in rs) for mode, rs in runs.items()}
    return {
        "chargers": chargers,
        "proxy_calls_per_second": rates["proxy"],
        "direct_calls_per_second": rates["direct"],
        "ratio": ratio(rates["proxy"], rates["direct"]),
        "latency": {
            mode: median_latency([Latency(**r["latency"]) for r in rs]).as_dict()
            for mode, rs in runs.items()
        },
        **usage_medians(runs),
        "runs": runs,
    }


async def profile_relay(ctx: Context, chargers: int) -> dict[str, Any]:
    """One more proxy run with the relay sampled by py-spy: where its time goes."""
    await ctx.stack.quiesce()
    assert ctx.stack.relay is not None
    result = await one_run(ctx, "proxy", chargers, profile_pid=ctx.stack.relay.pid)
    summary = profile.summarize_file(ctx.workdir / "relay.txt", rules=profile.RELAY_AREAS)
    return {"chargers": chargers, "run": result, **summary}
