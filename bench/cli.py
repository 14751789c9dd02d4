"""``python -m bench``: start everything, run the chosen scenarios, print, write JSON.

    .venv/bin/python -m bench                       # the full run (about 25 minutes)
    .venv/bin/python -m bench --quick               # a short run (about 3 minutes)
    .venv/bin/python -m bench --scenarios latency,throughput --runs 3
    make bench BENCH_ARGS="--quick --scenarios capacity --capacity-sizes 9000"

Results go to ``bench/results/bench-<UTC time>.json`` (with ``--profile``, the raw
py-spy stacks beside it); the tables are printed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report
from bench.params import (
    FULL,
    QUICK,
    SCENARIOS,
    Params,
    parse_counts,
    parse_positive,
    parse_rates,
    parse_scenarios,
)
from bench.scenarios import Context, capacity, ingestion, injection, latency, overload, throughput
from bench.stack import Stack, StackOptions

RESULTS = Path(__file__).parent / "results"
DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="OYE Proxy benchmarks: the proxy against a direct connection.",
    )
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test)")
    parser.add_argument(
        "--scenarios",
        type=parse_scenarios,
        default=SCENARIOS,
        help=f"comma-separated, from: {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument("--runs", type=int, help="proxy/direct pairs per figure")
    parser.add_argument("--seconds", type=float, help="measured seconds of each latency run")
    parser.add_argument("--rates", type=parse_rates, help="open loop: e.g. 100x500,1000x5000")
    parser.add_argument("--chargers", type=parse_counts, help="closed loop: e.g. 1,10,100")
    parser.add_argument("--capacity-sizes", type=parse_counts, help="storms: e.g. 1000,9000")
    parser.add_argument("--capacity-runs", type=int)
    parser.add_argument("--storm-concurrency", type=int, help="handshakes in flight")
    parser.add_argument("--overload-seconds", type=float)
    parser.add_argument("--ingest-frames", type=int)
    parser.add_argument("--generators", type=int, help="load-generator processes per run")
    parser.add_argument(
        "--relays",
        type=parse_positive,
        help="relay processes sharing the port (OYE_RELAY_PROCESSES)",
    )
    parser.add_argument(
        "--pg-dsn", default=os.environ.get("OYE_TEST_PG_DSN", DEFAULT_PG_DSN), help="PostgreSQL"
    )
    parser.add_argument("--no-postgres", dest="pg_dsn", action="store_const", const=None)
    parser.add_argument(
        "--profile", action="store_true", help="also sample the relay and the API with py-spy"
    )
    parser.add_argument(
        "--csms-compression",
        action="store_true",
        help="the echo CSMS accepts permessage-deflate (the relay offers it upstream)",
    )
    parser.add_argument("--log-level", default="INFO", help="OYE_LOG_LEVEL of the services")
    parser.add_argument("--note", default="", help="a remark stored with the results")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where the JSON goes")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    return parser


def params_from(args: argparse.Namespace) -> Params:
    params = QUICK if args.quick else FULL
    overrides = {
        "runs": args.runs,
        "latency_seconds": args.seconds,
        "rates": args.rates,
        "throughput_chargers": args.chargers,
        "capacity_sizes": args.capacity_sizes,
        "capacity_runs": args.capacity_runs,
        "storm_concurrency": args.storm_concurrency,
        "overload_seconds": args.overload_seconds,
        "ingest_frames": args.ingest_frames,
        "generators": args.generators,
        "relays": args.relays,
    }
    return params.replace(**{k: v for k, v in overrides.items() if v is not None})


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


async def run_scenarios(args: argparse.Namespace, params: Params, workdir: Path) -> dict[str, Any]:
    options = StackOptions(
        args.log_level, csms_compression=args.csms_compression, relays=params.relays
    )
    stack = Stack(workdir, options)
    relays = f"{params.relays} relays" if params.relays > 1 else "relay"
    say(f"starting nats-server, echo CSMS, {relays}, inject-api, logger")
    await stack.start()
    pg_dsn = await _postgres(args.pg_dsn) if "ingestion" in args.scenarios else None
    ctx = Context(stack, workdir, params, say, pg_dsn=pg_dsn, profile=args.profile)
    found: dict[str, Any] = {}
    profiles: dict[str, Any] = {}
    try:
        if "latency" in args.scenarios:
            found["latency"] = await latency.run(ctx)
        if "throughput" in args.scenarios:
            found["throughput"] = await throughput.run(ctx)
            if args.profile:
                most = max(params.throughput_chargers)
                profiles["relay"] = await throughput.profile_relay(ctx, most)
        if "injection" in args.scenarios:
            found["injection"] = await injection.run(ctx)
            if args.profile:
                profiles["inject-api"] = await injection.profile_api(ctx)
        if "capacity" in args.scenarios:
            found["capacity"] = await capacity.run(ctx)
        saturation = None
        if "ingestion" in args.scenarios:
            found["ingestion"] = await ingestion.run(ctx)
            saturation = found["ingestion"][0]["frames_per_second"]
        if "overload" in args.scenarios:
            found["overload"] = await overload.run(ctx, saturation=saturation)
    finally:
        say("stopping the stack")
        await stack.stop()
    if profiles:
        found["profiles"] = profiles
    return found


async def _postgres(dsn: str | None) -> str | None:
    """The DSN if PostgreSQL answers there, else None (its figures are then left out)."""
    if dsn is None:
        return None
    import asyncpg

    try:
        conn = await asyncpg.connect(dsn, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        say(f"PostgreSQL at {dsn} not available ({exc}); ingestion into SQLite only")
        return None
    await conn.close()
    return dsn


def machine(before: tuple[float, float, float], note: str) -> dict[str, Any]:
    after = os.getloadavg()
    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=False,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "open_files_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "versions": {
            name: importlib.metadata.version(name) for name in ("websockets", "nats-py", "uvloop")
        },
        "commit": commit,
        # Other work on the machine skews every figure: say how busy it was.
        "load_average_before": [round(x, 2) for x in before],
        "load_average_after": [round(x, 2) for x in after],
        "note": note,
    }


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    params = params_from(args)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    load_before = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="oye-bench-"))
    try:
        scenarios = asyncio.run(run_scenarios(args, params, workdir))
        args.output.mkdir(parents=True, exist_ok=True)
        for name, found in scenarios.get("profiles", {}).items():
            kept = args.output / f"bench-{stamp}-{name}.txt"
            shutil.copy(found["raw"], kept)
            found["raw"] = str(kept)
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    doc = report.document(
        time=stamp,
        quick=args.quick,
        machine=machine(load_before, args.note),
        params={**asdict(params), "scenarios": list(args.scenarios)},
        scenarios=scenarios,
    )
    print()
    print(report.tables(doc))
    path = args.output / f"bench-{stamp}.json"
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"\nwritten to {path}")
