"""Sustained overload of the log: forwarding must not wait for it, and it must end complete.

``overload_chargers`` chargers run a closed loop through the proxy for
``overload_seconds``, as fast as the stack carries them, twice:

* **log running**: the stack's logger (SQLite) ingests while the frames pass;
* **log stopped**: the logger process is frozen (SIGSTOP) for the whole load, the
  extreme overload (it takes nothing), and thawed afterwards.

For each: CALLs answered per second and their latency (had forwarding waited for the
log, the stopped log would stall it), the frames forwarded per second against the rows
the log took meanwhile, the backlog when the load ended, how long the log took to catch
up, and whether it ends complete: exactly one row per frame sent (every CALL the
chargers sent and every answer they got, boots included), counted by the run's own
charger ids.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.loadgen import Job
from bench.scenarios import Context
from bench.stack import rows_in_sqlite, usage_between
from bench.workers import Workers, total, workers

SAMPLE_EVERY = 1.0
CATCH_UP_LIMIT = 900.0


async def run(ctx: Context, *, saturation: float | None = None) -> list[dict[str, Any]]:
    if ctx.stack.logger is None:
        return []
    points = []
    for paused in (False, True):
        await ctx.stack.quiesce(at_least=1.0)
        point = await one_run(ctx, paused=paused)
        if saturation:
            point["log_saturation_frames_per_second"] = saturation
            point["overload_factor"] = point["forwarded_frames_per_second"] / saturation
        points.append(point)
        ctx.say(
            f"overload, log {point['log']}: {point['calls_per_second']:,.0f} CALL/s "
            f"(p99 {point['latency']['p99']:.2f} ms), forwarded "
            f"{point['forwarded_frames_per_second']:,.0f} frames/s, logged "
            f"{point['logged_frames_per_second']:,.0f}/s meanwhile; backlog "
            f"{point['backlog_at_end']:,}, caught up in {point['catch_up_seconds']:.1f} s, "
            f"complete: {point['complete']}"
        )
    return points


async def one_run(ctx: Context, *, paused: bool) -> dict[str, Any]:
    from bench.scenarios.throughput import summarize_run

    p = ctx.params
    prefix = ctx.prefix("ovl")
    job = Job(
        kind="closed",
        url=ctx.stack.relay_url,
        prefix=prefix,
        count=p.overload_chargers,
        total=p.overload_chargers,
        duration=p.overload_seconds,
    )
    rows = RowCounter(ctx, prefix)
    async with workers(ctx.jobs(job), ctx.workdir) as group:
        if paused:
            ctx.stack.pause_logger()
        try:
            at_start = await rows.count()
            before = ctx.stack.usage()
            results, samples = await _run_sampling(group, rows, job.duration)
            after = ctx.stack.usage()
            ended = time.monotonic()
            at_end = await rows.count()
        finally:
            if paused:
                ctx.stack.resume_logger()
        expected = int(total(results, "sent") + total(results, "answered"))
        caught_up, final = await rows.wait_for(expected, since=ended)
    window = max(result["window"] for result in results)
    forwarded = summarize_run(results)
    calls = int(total(results, "answered")) - p.overload_chargers
    return {
        "log": "stopped" if paused else "running",
        "seconds": window,
        "calls_per_second": forwarded["calls_per_second"],
        "latency": forwarded["latency"],
        "frames_sent": expected,
        "forwarded_frames_per_second": (expected - at_start) / window,
        "logged_frames_per_second": (at_end - at_start) / window,
        "backlog_at_end": expected - at_end,
        "catch_up_seconds": caught_up,
        "rows": final,
        "complete": final == expected,
        "rows_sampled": samples,
        "usage": usage_between(before, after, calls),
    }


async def _run_sampling(
    group: Workers, rows: RowCounter, duration: float
) -> tuple[list[dict[str, Any]], list[int]]:
    samples: list[int] = []

    async def sample() -> None:
        while True:
            await asyncio.sleep(SAMPLE_EVERY)
            samples.append(await rows.count())

    sampler = asyncio.create_task(sample())
    try:
        results = await group.run(limit=duration + 120)
    finally:
        sampler.cancel()
    return results, samples


class RowCounter:
    """Frames of one run's chargers in the stack's SQLite log."""

    def __init__(self, ctx: Context, prefix: str) -> None:
        self.path = ctx.stack.sqlite_path
        # Every id of the run sorts between the prefix and the prefix with its last
        # character bumped: an index range scan, however big the log is.
        self.low, self.high = prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)

    async def count(self) -> int:
        return await asyncio.to_thread(
            rows_in_sqlite,
            self.path,
            "WHERE charge_point_id >= ? AND charge_point_id < ? AND kind = 'frame'",
            self.low,
            self.high,
        )

    async def wait_for(self, expected: int, *, since: float) -> tuple[float, int]:
        """(seconds from ``since`` until the log holds ``expected`` rows, or it gave up;
        the rows then)."""
        while (found := await self.count()) < expected:
            if time.monotonic() - since > CATCH_UP_LIMIT:
                break
            await asyncio.sleep(0.1)  # another process's commits: no event to await
        return time.monotonic() - since, found
