"""Connection capacity: N chargers connect and boot at once; the relay's memory per charger.

A storm: every charger opens its WebSocket and sends a BootNotification, with at most
``storm_concurrency`` handshakes in flight per generator (thousands of SYNs at one
instant measure the kernel's accept queue, not the proxy). "Time to connect and boot"
is from the start until the last charger has its boot answered. For the proxy, a fresh
relay process (an earlier storm's freed memory would be reused) has its resident memory
(VmRSS) read just before the storm, right after it, and once the stack is idle again (at
least ``settle_seconds`` later); per charger is the growth over the before-reading divided
by the chargers booted.
"""

from __future__ import annotations

import time
from typing import Any

from bench.loadgen import Job
from bench.params import order
from bench.scenarios import Context
from bench.stack import cpu_seconds, file_limit, listen_overflows, open_files, rss_kib
from bench.stats import median, percentile, ratio
from bench.workers import merged, total, workers


async def run(ctx: Context) -> list[dict[str, Any]]:
    assert ctx.stack.relay is not None
    limit = file_limit(ctx.stack.relay.pid)
    points = []
    for size in ctx.params.capacity_sizes:
        if 2 * size + 100 > limit:
            ctx.say(f"capacity {size}: skipped, the relay may open {limit} files ({2 * size}+)")
            points.append({"chargers": size, "skipped": f"open-file limit {limit}"})
            continue
        runs: dict[str, list[dict[str, Any]]] = {"proxy": [], "direct": []}
        for n in range(ctx.params.capacity_runs):
            for mode in order(n):
                if mode == "proxy":
                    # Memory freed by an earlier storm would be reused and hide the cost.
                    await ctx.stack.restart_relay()
                await ctx.stack.quiesce(at_least=1.0)
                result = await one_run(ctx, mode, size)
                runs[mode].append(result)
                memory = (
                    f", relay +{result['kib_per_charger_after_storm']:.1f} KiB/charger "
                    f"(settled {result['kib_per_charger_settled']:.1f})"
                    if mode == "proxy"
                    else ""
                )
                ctx.say(
                    f"storm {size} {mode:<6} run {n + 1}: all booted in "
                    f"{result['seconds_all_booted'] or 0:.2f} s, failed {result['failed']}, "
                    f"accept-queue drops {result['listen_overflows']}{memory}"
                )
        points.append(point(size, runs))
    return points


async def one_run(ctx: Context, mode: str, size: int) -> dict[str, Any]:
    p = ctx.params
    # Every relay process together (one unless --relays).
    pids = ctx.stack.relay_pids()
    assert pids
    job = Job(
        kind="storm",
        url=ctx.url(mode),
        prefix=ctx.prefix(f"cap{mode[0]}"),
        count=size,
        total=size,
        concurrency=p.storm_concurrency,
    )
    before = sum(rss_kib(pid) for pid in pids)
    async with workers(ctx.jobs(job), ctx.workdir) as group:
        overflows = listen_overflows()
        cpu_before = sum(cpu_seconds(pid) for pid in pids)
        results = await group.run(limit=600)
        cpu_storm = sum(cpu_seconds(pid) for pid in pids) - cpu_before
        overflowed = listen_overflows()
        stormed = time.monotonic()
        after_storm = sum(rss_kib(pid) for pid in pids)
        files = sum(open_files(pid) for pid in pids)
        await ctx.stack.quiesce(at_least=p.settle_seconds)
        settled = sum(rss_kib(pid) for pid in pids)
        settle_seconds = time.monotonic() - stormed
    times = sorted(merged(results, "boot_ms"))
    booted = int(total(results, "booted"))
    failed = int(total(results, "failed"))
    result: dict[str, Any] = {
        "booted": booted,
        "failed": failed,
        "errors": _errors(results),
        "seconds_all_booted": times[-1] / 1000 if times and not failed else None,
        "seconds_p50": percentile(times, 50) / 1000 if times else None,
        # SYNs dropped on full accept queues during the storm (anywhere on the machine).
        "listen_overflows": overflowed - overflows
        if overflows is not None and overflowed is not None
        else None,
    }
    if mode == "proxy":
        result.update(
            relay_rss_kib={"before": before, "after_storm": after_storm, "settled": settled},
            kib_per_charger_after_storm=(after_storm - before) / max(booted, 1),
            kib_per_charger_settled=(settled - before) / max(booted, 1),
            settled_after_seconds=round(settle_seconds, 1),
            relay_open_files=files,
            # What one charger's connect and boot cost the relay: the least noisy figure.
            relay_cpu_ms_per_charger=round(cpu_storm * 1000 / max(booted, 1), 3),
        )
    return result


def _errors(results: list[dict[str, Any]]) -> dict[str, int]:
    errors: dict[str, int] = {}
    for result in results:
        for name, count in result.get("errors", {}).items():
            errors[name] = errors.get(name, 0) + count
    return errors


def point(size: int, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    def med(mode: str, key: str) -> float | None:
        values = [r[key] for r in runs[mode] if r.get(key) is not None]
        return median(values) if values else None

    proxy, direct = med("proxy", "seconds_all_booted"), med("direct", "seconds_all_booted")
    return {
        "chargers": size,
        "proxy_seconds": proxy,
        "direct_seconds": direct,
        "ratio": ratio(proxy, direct) if proxy is not None and direct is not None else None,
        "failed": {mode: sum(r["failed"] for r in rs) for mode, rs in runs.items()},
        "kib_per_charger_after_storm": med("proxy", "kib_per_charger_after_storm"),
        "kib_per_charger_settled": med("proxy", "kib_per_charger_settled"),
        "relay_open_files": med("proxy", "relay_open_files"),
        "relay_cpu_ms_per_charger": med("proxy", "relay_cpu_ms_per_charger"),
        "listen_overflows": {mode: med(mode, "listen_overflows") for mode in runs},
        "runs": runs,
    }
