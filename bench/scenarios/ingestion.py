"""Log ingestion: frames per second from the traffic stream into SQLite and PostgreSQL.

A nats-server of its own gets ``ingest_frames`` relay-like frames (every header, 100
chargers, MeterValues CALL/CALLRESULT pairs: :func:`bench.bench_ingest.frames`). Then,
for each store and run, a fresh database (a new SQLite file, or a new schema that is
dropped afterwards) and one ``oye logger`` process that drains the stream from the start;
the rate is timed from its first committed row to its last, so start-up is left out.
``bench/bench_ingest.py`` goes further (the store alone, batch sizes, several loggers).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from bench.bench_ingest import drop_schema, fill_stream, postgres_schema, stored
from bench.scenarios import Context
from bench.stack import Service, cpu_seconds, oye, service_env, spawn
from bench.stats import median, spread
from oye_cli.nats_server import NatsServer
from oye_shared.settings import Settings, load_settings

POLL = 0.05


async def run(ctx: Context) -> list[dict[str, Any]]:
    p = ctx.params
    points = []
    server = NatsServer(ctx.workdir / "ingest-nats")
    await asyncio.to_thread(server.start)
    try:
        base = load_settings(
            nats_url=server.url, data_dir=ctx.workdir / "ingest", log_level="WARNING"
        )
        seconds = await fill_stream(base, p.ingest_frames)
        ctx.say(f"ingestion: {p.ingest_frames:,} frames in the stream ({seconds:.1f} s)")
        stores = ["sqlite", "postgres"] if ctx.pg_dsn else ["sqlite"]
        for store in stores:
            rates, cpus = [], []
            for n in range(p.ingest_runs):
                async with database(ctx, store) as db_url:
                    settings = base.model_copy(update={"db_url": db_url})
                    rate, cpu_us = await drain(ctx, settings, p.ingest_frames)
                rates.append(rate)
                cpus.append(cpu_us)
                ctx.say(
                    f"ingestion {store:<8} run {n + 1}: {rate:,.0f} frames/s, "
                    f"logger {cpu_us:.1f} µs CPU/frame"
                )
            low, high = spread(rates)
            points.append(
                {
                    "store": store,
                    "frames": p.ingest_frames,
                    "frames_per_second": median(rates),
                    "spread": [low, high],
                    "runs": rates,
                    "logger_us_per_frame": median(cpus),
                    "logger_us_per_frame_runs": cpus,
                }
            )
    finally:
        await asyncio.to_thread(server.stop)
    return points


async def drain(ctx: Context, settings: Settings, count: int) -> tuple[float, float]:
    """One logger process drains the stream into a fresh store: frames per second, and
    the logger's CPU (user + system) per frame, in µs, over the same window."""
    env = service_env(
        NATS_URL=str(settings.nats_url),
        OYE_DATA_DIR=str(settings.data_dir),
        OYE_LOGGER_METRICS_PORT="0",
        OYE_LOG_LEVEL="WARNING",
        **({"OYE_DB_URL": settings.db_url} if settings.db_url else {}),
    )
    await delete_consumer(settings)  # so this logger reads the stream from the start
    logger = await spawn("ingest-logger", oye("logger"), env, ctx.workdir)
    try:
        return await _timed(logger, settings, count)
    finally:
        await logger.stop()


async def _timed(logger: Service, settings: Settings, count: int) -> tuple[float, float]:
    async with asyncio.timeout(900):
        while (first := await stored(settings)) == 0:
            logger.check_running()
            await asyncio.sleep(POLL)  # another process's commits: no event to await
        began, cpu_began = time.perf_counter(), cpu_seconds(logger.pid)
        while await stored(settings) < count:
            logger.check_running()
            await asyncio.sleep(POLL)
        seconds, cpu = time.perf_counter() - began, cpu_seconds(logger.pid) - cpu_began
    return (count - first) / seconds, cpu / (count - first) * 1e6


async def delete_consumer(settings: Settings) -> None:
    """The logger's durable consumer starts over: the next logger reads every frame again."""
    import nats
    import nats.js.errors

    nc = await nats.connect(settings.nats_servers)
    try:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await nc.jetstream().delete_consumer(settings.stream_name, "oye-logger")
    finally:
        await nc.close()


@contextlib.asynccontextmanager
async def database(ctx: Context, store: str) -> AsyncIterator[str]:
    """A fresh SQLite file or PostgreSQL schema (dropped afterwards) for one run."""
    if store == "sqlite":
        yield f"sqlite:///{ctx.workdir / f'ingest-{secrets.token_hex(4)}.sqlite3'}"
        return
    assert ctx.pg_dsn is not None
    schema, dsn = await postgres_schema(ctx.pg_dsn)
    try:
        yield dsn
    finally:
        await drop_schema(ctx.pg_dsn, schema)
