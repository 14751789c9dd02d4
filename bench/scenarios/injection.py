"""Injection round trip: HTTP POST /api/inject/{id} -> relay -> charger -> its answer -> HTTP.

Simulated chargers connected through the relay answer every CALL at once; a separate
generator process sends ``GetConfiguration`` injections over keep-alive HTTP/1.1 (one
connection per charger, each waiting for its answer before the next request):
sequentially to one charger, and on ``inject_concurrent`` connections at once, each to
its own charger. Every request carries HTTP Basic credentials, as a client sends them.

The direct figure is the same number of CALL round trips on a direct WebSocket (charger
and echo CSMS, no HTTP, no NATS): the floor any injection sits on.
"""

from __future__ import annotations

from typing import Any

from bench import profile
from bench.loadgen import Job
from bench.params import order
from bench.scenarios import Context
from bench.stack import ADMIN_PASSWORD
from bench.stats import Latency, median_latency, summarize
from bench.workers import merged, workers


async def run(ctx: Context) -> list[dict[str, Any]]:
    points = []
    for concurrency in (1, ctx.params.inject_concurrent):
        runs: dict[str, list[dict[str, Any]]] = {"proxy": [], "direct": []}
        for n in range(min(ctx.params.runs, ctx.params.inject_runs)):
            for mode in order(n):
                await ctx.stack.quiesce()
                result = await (inject if mode == "proxy" else direct)(ctx, concurrency)
                runs[mode].append(result)
                ctx.say(
                    f"injection x{concurrency} {mode:<6} run {n + 1}: "
                    f"p50 {result['latency']['p50']:.2f} ms, p99 {result['latency']['p99']:.2f} ms"
                    f", {result['per_second']:.0f}/s, not 200: {result['not_ok']}"
                )
        medians = {
            mode: median_latency([Latency(**r["latency"]) for r in rs]).as_dict()
            for mode, rs in runs.items()
        }
        points.append({"concurrency": concurrency, **medians, "runs": runs})
    return points


async def inject(
    ctx: Context, concurrency: int, *, profile_pid: int | None = None
) -> dict[str, Any]:
    p = ctx.params
    prefix = ctx.prefix("inj")
    chargers = Job(kind="idle", url=ctx.stack.relay_url, prefix=prefix, count=concurrency)
    client = Job(
        kind="inject",
        prefix=prefix,
        count=concurrency,
        api_port=ctx.stack.http_port,
        password=ADMIN_PASSWORD,
        calls=p.inject_calls // concurrency if concurrency > 1 else p.inject_calls,
        warmup_calls=p.inject_warmup,
    )
    async with (
        workers([chargers], ctx.workdir) as answering,
        workers([client], ctx.workdir) as injecting,
    ):
        sampling = None
        if profile_pid is not None:
            sampling = profile.start(profile_pid, 5, ctx.workdir / "inject-api")
        (result,) = await injecting.run(limit=600)
        if sampling is not None:
            await sampling
        await answering.run(limit=30)
    samples = [us / 1000 for us in result["latencies_us"]]
    return {
        "latency": summarize(samples).as_dict(),
        "per_second": len(samples) / result["seconds"],
        "not_ok": sum(n for status, n in result["statuses"].items() if status != "200"),
        "statuses": result["statuses"],
    }


async def direct(ctx: Context, concurrency: int) -> dict[str, Any]:
    p = ctx.params
    job = Job(
        kind="closed",
        url=ctx.stack.direct_url,
        prefix=ctx.prefix("injd"),
        count=concurrency,
        total=concurrency,
        calls=p.inject_calls // concurrency if concurrency > 1 else p.inject_calls,
    )
    async with workers([job], ctx.workdir) as group:
        (result,) = await group.run(limit=600)
    samples = [us / 1000 for us in merged([result], "latencies_us")]
    return {
        "latency": summarize(samples).as_dict(),
        "per_second": len(samples) / result["window"] if result["window"] else 0.0,
        "not_ok": result["sent"] - result["answered"],
        "statuses": {},
    }


async def profile_api(ctx: Context) -> dict[str, Any]:
    """Sequential injections with the inject-api sampled by py-spy."""
    assert ctx.stack.api is not None
    await ctx.stack.quiesce()
    result = await inject(ctx, 1, profile_pid=ctx.stack.api.pid)
    return {"run": result, **profile.summarize_file(ctx.workdir / "inject-api.txt")}
