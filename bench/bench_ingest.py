"""Ingestion benchmark: frames per second from the traffic stream into SQLite and PostgreSQL.

Publishes N relay-like frames (100 chargers, CALL/CALLRESULT pairs, every header) into a
real nats-server's stream once. Then, for each store, with a fresh database and a fresh
durable consumer each time:

* the store alone: the same frames as rows, written in batches (no NATS), for each
  batch size: what the database side can take;
* one logger in-process, for each batch size;
* two logger processes (``python -m oye_logger.main``) sharing the durable consumer, as
  a deployment scales out (default batch size).

Each run is timed from its first committed batch to its last (process start-up is left
out). Prints a table; writes JSON to ``bench/results/``.

    .venv/bin/python -m bench.bench_ingest [--frames 100000] [--batch-sizes 250,500,1000]
        [--processes 2] [--pg-dsn postgresql://postgres@127.0.0.1:5432/test | --no-postgres]

(As a module: run as a script, ``bench/http.py`` would stand in for the standard library's
``http``.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import sqlite3
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import nats
import nats.js.errors

from oye_cli.nats_server import NatsServer
from oye_logger.consumer import ConsumerOptions, Progress
from oye_logger.main import run
from oye_logger.rows import RowMaker
from oye_logger.store import open_store
from oye_shared import bus
from oye_shared import headers as h
from oye_shared.settings import Settings, load_settings
from oye_shared.subjects import Direction, Subjects

RESULTS = Path(__file__).parent / "results"
DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass
class Result:
    store: str
    #: "store only" (rows written straight into the store, no NATS), "1 logger" or
    #: "N loggers" (processes sharing the durable consumer).
    run: str
    batch_size: int
    frames: int
    seconds: float

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds


def frames(count: int) -> list[tuple[str, bytes, dict[str, str]]]:
    """Relay-like frames: a MeterValues CALL upstream and its answer downstream."""
    subjects = Subjects("oye")
    out = []
    for i in range(count):
        cp = f"CP-{i % 100:03d}"
        message_id = f"{i // 2:08d}-{secrets.token_hex(4)}"
        if i % 2 == 0:
            direction, message_type = Direction.UPSTREAM, "CALL"
            body = json.dumps(
                [
                    2,
                    message_id,
                    "MeterValues",
                    {
                        "connectorId": 1,
                        "meterValue": [
                            {
                                "timestamp": "2025-06-01T12:00:00Z",
                                "sampledValue": [{"value": str(i), "measurand": "Power"}],
                            }
                        ],
                    },
                ]
            )
        else:
            direction, message_type = Direction.DOWNSTREAM, "CALLRESULT"
            body = json.dumps([3, message_id, {}])
        frame_id = h.new_frame_id()
        headers = {
            h.DIRECTION: direction.value,
            h.CHARGE_POINT: cp,
            h.TIME: h.now_rfc3339(),
            h.FRAME_ID: frame_id,
            h.NATS_MSG_ID: frame_id,
            h.SUBPROTOCOL: "ocpp1.6",
            h.RELAY: "bench",
            h.MESSAGE_TYPE: message_type,
            h.MESSAGE_ID: message_id,
            h.ACTION: "MeterValues",
        }
        out.append((subjects.frames(cp, direction), body.encode(), headers))
    return out


async def fill_stream(settings: Settings, count: int) -> float:
    nc = await nats.connect(settings.nats_servers)
    try:
        await bus.ensure_traffic_stream(nc, settings)
        started = time.perf_counter()
        for n, (subject, body, headers) in enumerate(frames(count), 1):
            await nc.publish(subject, body, headers=headers)
            if n % 1000 == 0:
                await nc.flush()
        await nc.flush()
        js = nc.jetstream()
        while (await js.stream_info(settings.stream_name)).state.messages < count:  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # the server stores on its own time: no event
        return time.perf_counter() - started
    finally:
        await nc.close()


async def ingest(settings: Settings, count: int, batch_size: int) -> tuple[int, float]:
    """One logger in-process: (frames timed, seconds from first to last commit)."""
    stop, started, progress = asyncio.Event(), asyncio.Event(), Progress()
    options = ConsumerOptions(durable=f"bench-{secrets.token_hex(4)}", batch_size=batch_size)
    task = asyncio.create_task(
        run(settings, stop=stop, started=started, progress=progress, options=options)
    )
    try:
        async with asyncio.timeout(600):
            await progress.wait_for(lambda p: p.batches >= 1)
            first, begin = progress.inserted, time.perf_counter()
            await progress.wait_for(lambda p: p.inserted >= count)
        return count - first, time.perf_counter() - begin
    finally:
        stop.set()
        await task


async def ingest_processes(settings: Settings, count: int, processes: int) -> tuple[int, float]:
    """Logger processes sharing one durable consumer, timed by polling the store's count."""
    nc = await nats.connect(settings.nats_servers)
    try:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await nc.jetstream().delete_consumer(settings.stream_name, "oye-logger")
    finally:
        await nc.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OYE_")}
    env.update(
        NATS_URL=str(settings.nats_url),
        OYE_DATA_DIR=str(settings.data_dir),
        OYE_LOG_LEVEL="WARNING",
        OYE_LOGGER_METRICS_PORT="0",  # each its own port: two on 9101 and one exits
        **({"OYE_DB_URL": settings.db_url} if settings.db_url else {}),
    )
    children = [
        await asyncio.create_subprocess_exec(sys.executable, "-m", "oye_logger.main", env=env)
        for _ in range(processes)
    ]
    try:
        async with asyncio.timeout(600):
            # Other processes' commits: there is no event to await, so poll (lightly).
            while (first := await stored(settings)) == 0:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            begin = time.perf_counter()
            while await stored(settings) < count:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        return count - first, time.perf_counter() - begin
    finally:
        for child in children:
            child.terminate()
        for child in children:
            await child.wait()


async def stored(settings: Settings) -> int:
    """Rows in the store, read straight from the database (0 before it exists)."""
    if settings.db_url and settings.db_url.startswith("postgres"):
        conn = await asyncpg.connect(settings.db_url)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM logs"))
        except asyncpg.UndefinedTableError:
            return 0
        finally:
            await conn.close()
    path = Path(str(settings.db_url).removeprefix("sqlite://"))

    def count() -> int:
        if not path.exists():
            return 0
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            return int(db.execute("SELECT count(*) FROM logs").fetchone()[0])
        except sqlite3.OperationalError:
            return 0
        finally:
            db.close()

    return await asyncio.to_thread(count)


async def postgres_schema(dsn: str) -> tuple[str, str]:
    schema = f"bench_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
    finally:
        await conn.close()
    separator = "&" if "?" in dsn else "?"
    return schema, f"{dsn}{separator}search_path={schema}"


async def drop_schema(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await conn.close()


async def bench(args: argparse.Namespace, workdir: Path) -> list[Result]:
    results = []
    with NatsServer(workdir / "nats") as server:
        base = load_settings(
            nats_url=server.url,
            data_dir=workdir / "data",
            relay_id="bench",
            log_level="WARNING",
            logger_metrics_port=0,  # any free port: 9101 may be another logger's
        )
        fill = await fill_stream(base, args.frames)
        print(f"published {args.frames} frames into the stream in {fill:.1f} s")
        stores = ["sqlite", "postgres"] if args.pg_dsn else ["sqlite"]
        runs = [(0, size) for size in args.batch_sizes]
        runs += [(1, size) for size in args.batch_sizes]
        if args.processes > 1:
            runs.append((args.processes, ConsumerOptions().batch_size))
        for store in stores:
            for processes, batch_size in runs:
                async with database(store, args, workdir) as db_url:
                    settings = base.model_copy(update={"db_url": db_url})
                    if processes == 0:
                        frames, seconds = await store_only(settings, args.frames, batch_size)
                    elif processes == 1:
                        frames, seconds = await ingest(settings, args.frames, batch_size)
                    else:
                        frames, seconds = await ingest_processes(settings, args.frames, processes)
                name = {0: "store only", 1: "1 logger"}.get(processes, f"{processes} loggers")
                result = Result(store, name, batch_size, frames, seconds)
                results.append(result)
                print(
                    f"{store:<9} {name:<10} batch {batch_size:5d}: "
                    f"{result.frames_per_second:9,.0f} frames/s"
                )
    return results


async def store_only(settings: Settings, count: int, batch_size: int) -> tuple[int, float]:
    """The store's own speed: the same frames as rows, written in batches, no NATS."""
    maker = RowMaker("oye")
    rows = [
        maker.make(subject, body, headers, fallback=lambda: ("", 0))
        for subject, body, headers in frames(count)
    ]
    async with open_store(settings) as store:
        begin = time.perf_counter()
        for start in range(0, count, batch_size):
            await store.write(rows[start : start + batch_size])
        return count, time.perf_counter() - begin


@contextlib.asynccontextmanager
async def database(store: str, args: argparse.Namespace, workdir: Path) -> AsyncIterator[str]:
    """A fresh SQLite file or PostgreSQL schema for one run."""
    if store == "sqlite":
        yield f"sqlite:///{workdir / f'sqlite-{secrets.token_hex(4)}.sqlite3'}"
        return
    schema, dsn = await postgres_schema(args.pg_dsn)
    try:
        yield dsn
    finally:
        await drop_schema(args.pg_dsn, schema)


def table(results: list[Result]) -> str:
    lines = [
        "| store    | run        | batch size | frames timed | seconds | frames/s |",
        "|----------|------------|-----------:|-------------:|--------:|---------:|",
    ]
    for r in results:
        lines.append(
            f"| {r.store:<8} | {r.run:<10} | {r.batch_size:>10} | {r.frames:>12} "
            f"| {r.seconds:>7.2f} | {r.frames_per_second:>8,.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument(
        "--batch-sizes",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[250, 500, 1000],
    )
    parser.add_argument("--processes", type=int, default=2, help="also run this many (1: skip)")
    parser.add_argument("--pg-dsn", default=os.environ.get("OYE_TEST_PG_DSN", DEFAULT_PG_DSN))
    parser.add_argument("--no-postgres", dest="pg_dsn", action="store_const", const=None)
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="oye-bench-") as tmp:
        results = asyncio.run(bench(args, Path(tmp)))
    load_after = os.getloadavg()
    print()
    print(table(results))
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report: dict[str, Any] = {
        "benchmark": "ingest",
        "time": stamp,
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            # Other work on the machine skews every figure: say how busy it was.
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in load_after],
        },
        "results": [
            {**asdict(r), "frames_per_second": round(r.frames_per_second)} for r in results
        ],
    }
    path = RESULTS / f"ingest-{stamp}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
