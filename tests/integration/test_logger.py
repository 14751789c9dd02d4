"""The logger against a real nats-server, real SQLite and a real PostgreSQL.

Frames are published exactly as the relay publishes them (subject, body, every ``Oye-*``
header); the logger runs in-process (or as a child process, to be killed with SIGKILL);
the log is read back over NATS request/reply and through the API router.

PostgreSQL: ``OYE_TEST_PG_DSN`` (default ``postgresql://postgres@127.0.0.1:5432/test``);
each test gets its own schema, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import nats
import nats.errors
import pytest
from fastapi import FastAPI
from nats.aio.client import Client

from oye_api.deps import get_nats, require_user
from oye_api.routes import logs as logs_route
from oye_cli.nats_server import NatsServer
from oye_logger.consumer import ConsumerOptions, LogConsumer, Progress, ensure_consumer
from oye_logger.main import run
from oye_logger.retention import Retention, RetentionPolicy
from oye_logger.rows import LogRow, RowMaker
from oye_logger.store import Store, StoreError, open_store
from oye_shared import bus
from oye_shared import headers as h
from oye_shared.frames import FrameError, parse_frame
from oye_shared.logquery import LogPage, LogQuery, LogQueryError, parse_reply
from oye_shared.settings import Settings
from oye_shared.subjects import Direction, EventKind, Subjects
from tests.support.relay import eventually

pytestmark = pytest.mark.integration

PG_DSN = os.environ.get("OYE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
SUBJECTS = Subjects("oye")
T0 = 1_750_000_000.0  # 2025-06-15T15:06:40Z
#: Short redelivery in tests: a frame fetched by a killed logger comes back in 2 s.
FAST = ConsumerOptions(ack_wait=2.0, fetch_timeout=0.5)


# --- publishing as the relay does -----------------------------------------------------


def frame_message(
    charge_point_id: str,
    direction: Direction,
    text: str | bytes,
    *,
    at: float | None = None,
    action: str | None = None,
    relay: str = "relay-test",
) -> tuple[str, bytes, dict[str, str]]:
    """Subject, body and headers of one frame, as the relay's TrafficTap builds them."""
    frame_id = h.new_frame_id()
    headers = {
        h.DIRECTION: direction.value,
        h.CHARGE_POINT: charge_point_id,
        h.TIME: h.rfc3339(_datetime(at)) if at is not None else h.now_rfc3339(),
        h.FRAME_ID: frame_id,
        h.NATS_MSG_ID: frame_id,
        h.SUBPROTOCOL: "ocpp1.6",
        h.RELAY: relay,
    }
    try:
        parsed = parse_frame(text)
    except FrameError as error:
        headers[h.MESSAGE_TYPE] = h.MALFORMED
        headers[h.ERROR] = error.reason
        if error.message_id is not None:
            headers[h.MESSAGE_ID] = error.message_id
    else:
        headers[h.MESSAGE_TYPE] = parsed.message_type.name
        headers[h.MESSAGE_ID] = parsed.message_id
        if name := parsed.action or action:
            headers[h.ACTION] = name
    if isinstance(text, str):
        body = text.encode()
    else:
        body = text
        headers[h.BINARY] = "1"
    return SUBJECTS.frames(charge_point_id, direction), body, headers


def event_message(
    charge_point_id: str, kind: EventKind, *, at: float
) -> tuple[str, bytes, dict[str, str]]:
    frame_id = h.new_frame_id()
    time = h.rfc3339(_datetime(at))
    body = {"event": kind.value, "chargePointId": charge_point_id, "relay": "relay-test"}
    headers = {
        h.CHARGE_POINT: charge_point_id,
        h.TIME: time,
        h.FRAME_ID: frame_id,
        h.NATS_MSG_ID: frame_id,
        h.RELAY: "relay-test",
    }
    return SUBJECTS.events(charge_point_id, kind), json.dumps(body).encode(), headers


def _datetime(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


async def publish(nc: Client, messages: list[tuple[str, bytes, dict[str, str]]]) -> list[str]:
    """Publish like the relay (core NATS, then flush); return the frame ids."""
    for subject, body, headers in messages:
        await nc.publish(subject, body, headers=headers)
    await nc.flush()
    return [headers[h.FRAME_ID] for _, _, headers in messages]


async def publish_surely(nc: Client, message: tuple[str, bytes, dict[str, str]]) -> None:
    """Publish until JetStream confirms; a retry of a stored frame is dropped by its id."""
    subject, body, headers = message
    js = nc.jetstream()
    while True:
        try:
            await js.publish(subject, body, headers=headers, timeout=1.0)
            return
        except (nats.errors.Error, OSError):
            await asyncio.sleep(0.1)  # NATS is restarting: nothing to await but time


# --- stores, loggers, queries ---------------------------------------------------------


@contextlib.asynccontextmanager
async def pg_schema() -> AsyncIterator[str]:
    """A DSN whose search_path is a fresh schema of its own, dropped afterwards."""
    schema = f"oye_test_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        separator = "&" if "?" in PG_DSN else "?"
        yield f"{PG_DSN}{separator}search_path={schema}"
    finally:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db_settings(
    request: pytest.FixtureRequest, settings: Settings
) -> AsyncIterator[Settings]:
    """The test's settings, with the log in SQLite (the default) or in PostgreSQL."""
    if request.param == "sqlite":
        yield settings
        return
    async with pg_schema() as dsn:
        yield settings.model_copy(update={"db_url": dsn})


@dataclass
class RunningLogger:
    stop: asyncio.Event
    task: asyncio.Task[None]
    progress: Progress = field(default_factory=Progress)

    async def wait_inserted(self, count: int, within: float = 30.0) -> None:
        async with asyncio.timeout(within):
            await self.progress.wait_for(lambda p: p.inserted >= count)


@contextlib.asynccontextmanager
async def logger_running(
    settings: Settings,
    options: ConsumerOptions = FAST,
    progress: Progress | None = None,
    **kw: Any,
) -> AsyncIterator[RunningLogger]:
    """Run the logger in-process; stop it cleanly at the end."""
    stop, started, progress = asyncio.Event(), asyncio.Event(), progress or Progress()
    task = asyncio.create_task(
        run(settings, stop=stop, started=started, progress=progress, options=options, **kw)
    )
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()
    logger = RunningLogger(stop, task, progress)
    try:
        yield logger
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await task


async def ask(nc: Client, **query: Any) -> LogPage | LogQueryError:
    reply = await nc.request(SUBJECTS.logs_query, json.dumps(query).encode(), timeout=10)
    return parse_reply(reply.data)


async def page(nc: Client, **query: Any) -> LogPage:
    result = await ask(nc, **query)
    assert isinstance(result, LogPage), result
    return result


async def all_pages(nc: Client, **query: Any) -> list[dict[str, Any]]:
    """Every entry of a query, following the cursor."""
    entries: list[dict[str, Any]] = []
    cursor = None
    while True:
        result = await page(nc, **query, **({"cursor": cursor} if cursor else {}))
        entries += [json.loads(e.model_dump_json(by_alias=True)) for e in result.entries]
        if not (cursor := result.next_cursor):
            return entries


async def stored_frame_ids(settings: Settings) -> list[str]:
    """Every frame id in the store, duplicates included (read straight from the database)."""
    if settings.db_url:
        conn = await asyncpg.connect(settings.db_url)
        try:
            return [r["frame_id"] for r in await conn.fetch("SELECT frame_id FROM logs")]
        except asyncpg.UndefinedTableError:
            return []  # not created yet
        finally:
            await conn.close()

    def read() -> list[str]:
        path = settings.data_dir / "oye-log.sqlite3"
        if not path.exists():
            return []
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            return [frame_id for (frame_id,) in db.execute("SELECT frame_id FROM logs")]
        except sqlite3.OperationalError:
            return []  # not created yet
        finally:
            db.close()

    return await asyncio.to_thread(read)


# --- a small, varied conversation ---------------------------------------------------------


def conversation() -> list[tuple[str, bytes, dict[str, str]]]:
    """Two chargers, calls both ways, a reply, an error, a malformed frame, an event."""
    at = iter(T0 + n for n in range(100))
    return [
        event_message("CP-A", EventKind.CONNECTED, at=next(at)),
        frame_message(
            "CP-A", Direction.UPSTREAM, '[2,"a1","BootNotification",{"v":1}]', at=next(at)
        ),
        frame_message(
            "CP-A",
            Direction.DOWNSTREAM,
            '[3,"a1",{"status":"Accepted"}]',
            at=next(at),
            action="BootNotification",
        ),
        frame_message("CP-B", Direction.UPSTREAM, '[2,"b1","Heartbeat",{}]', at=next(at)),
        frame_message(
            "CP-B",
            Direction.DOWNSTREAM,
            '[3,"b1",{"currentTime":"x"}]',
            at=next(at),
            action="Heartbeat",
        ),
        frame_message(
            "CP-A", Direction.DOWNSTREAM, '[2,"c1","Reset",{"type":"Soft"}]', at=next(at)
        ),
        frame_message(
            "CP-A",
            Direction.UPSTREAM,
            '[4,"c1","NotSupported","no",{}]',
            at=next(at),
            action="Reset",
        ),
        frame_message("CP-A", Direction.UPSTREAM, '[2,"a2","Heartbeat",{', at=next(at)),
        frame_message("CP-B", Direction.UPSTREAM, '[2,"b2","Heartbeat",{}]', at=next(at)),
    ]


async def test_frames_and_events_are_stored_and_found_by_every_filter(
    db_settings: Settings, nc: Client
) -> None:
    """Each filter (and their combination) finds exactly the right entries, newest first."""
    messages = conversation()
    async with logger_running(db_settings) as logger:
        ids = await publish(nc, messages)
        await logger.wait_inserted(len(messages))

        everything = await page(nc)
        assert [e.frame_id for e in everything.entries] == ids[::-1]
        assert everything.next_cursor is None

        boot, boot_answer = everything.entries[-2], everything.entries[-3]
        assert (boot.charge_point_id, boot.direction, boot.message_type) == (
            "CP-A",
            "UPSTREAM",
            "CALL",
        )
        assert (boot.message_id, boot.action, boot.payload) == (
            "a1",
            "BootNotification",
            [2, "a1", "BootNotification", {"v": 1}],
        )
        assert (boot.timestamp, boot.time) == (T0 + 1, "2025-06-15T15:06:41.000000Z")
        assert (boot.subprotocol, boot.relay, boot.kind) == ("ocpp1.6", "relay-test", "frame")
        assert boot.raw == '[2,"a1","BootNotification",{"v":1}]'
        assert (boot_answer.message_type, boot_answer.action) == ("CALLRESULT", "BootNotification")

        def frame_ids(result: LogPage) -> set[str]:
            return {e.frame_id for e in result.entries}

        assert frame_ids(await page(nc, chargePointId="CP-B")) == {ids[3], ids[4], ids[8]}
        assert frame_ids(await page(nc, direction="DOWNSTREAM")) == {ids[2], ids[4], ids[5]}
        # The malformed frame has no action: the relay could not read one.
        assert frame_ids(await page(nc, action="Heartbeat")) == {ids[3], ids[4], ids[8]}
        assert frame_ids(await page(nc, action="Reset")) == {ids[5], ids[6]}
        assert frame_ids(await page(nc, messageId="c1")) == {ids[5], ids[6]}
        assert frame_ids(await page(nc, kind="event")) == {ids[0]}
        assert frame_ids(await page(nc, action="connected")) == {ids[0]}
        assert frame_ids(await page(nc, since=T0 + 6)) == {ids[7], ids[8]}
        assert frame_ids(await page(nc, until="2025-06-15T15:06:41Z")) == {ids[0], ids[1]}
        assert frame_ids(await page(nc, since=T0 + 1, until=T0 + 3)) == {ids[2], ids[3]}
        combined = await page(nc, chargePointId="CP-A", direction="UPSTREAM", kind="frame")
        assert [e.frame_id for e in combined.entries] == [ids[7], ids[6], ids[1]]
        assert frame_ids(
            await page(nc, chargePointId="CP-B", direction="UPSTREAM", since=T0 + 4)
        ) == {ids[8]}

        malformed = combined.entries[0]
        assert (malformed.message_type, malformed.error, malformed.payload) == (
            "MALFORMED",
            "not-json",
            None,
        )
        assert malformed.raw == '[2,"a2","Heartbeat",{'
        (event,) = (await page(nc, kind="event")).entries
        assert (event.direction, event.action, event.payload["event"]) == (
            None,
            "connected",
            "connected",
        )


async def test_the_cursor_walks_every_entry_once_newest_first(
    db_settings: Settings, nc: Client
) -> None:
    """Pages of 4 through 30 frames: no entry twice, none missing, order kept."""
    messages = [
        frame_message("CP-C", Direction.UPSTREAM, f'[2,"m{n}","Heartbeat",{{}}]', at=T0 + n // 3)
        for n in range(30)
    ]
    async with logger_running(db_settings) as logger:
        ids = await publish(nc, messages)
        await logger.wait_inserted(30)
        first = await page(nc, limit=4)
        assert len(first.entries) == 4
        assert first.next_cursor is not None
        walked = await all_pages(nc, limit=4)
        # Entries with equal times come newest-stored first, like every other tie.
        assert [e["frameId"] for e in walked] == ids[::-1]
        assert [e["frameId"] for e in await all_pages(nc, limit=7, chargePointId="CP-C")] == ids[
            ::-1
        ]
        # New traffic does not shift a walk in progress.
        await publish(nc, [frame_message("CP-C", Direction.UPSTREAM, '[2,"new","Heartbeat",{}]')])
        await logger.wait_inserted(31)
        second = await page(nc, limit=4, cursor=first.next_cursor)
        assert [e.frame_id for e in second.entries] == ids[::-1][4:8]


async def test_a_bad_query_gets_the_error_shape_with_every_problem(
    settings: Settings, nc: Client
) -> None:
    """Over NATS: one error shape, each problem at its path, the store never asked."""
    async with logger_running(settings):
        result = await ask(nc, limit=0, direction="SIDEWAYS", since="yesterday", cursor="zz")
        assert isinstance(result, LogQueryError)
        assert result.code == "invalid"
        assert {p.path for p in result.problems} == {
            "$.limit",
            "$.direction",
            "$.since",
            "$.cursor",
        }
        reply = await nc.request(SUBJECTS.logs_query, b"not json", timeout=5)
        assert isinstance(parse_reply(reply.data), LogQueryError)


async def test_a_page_never_exceeds_the_nats_payload_limit(settings: Settings, nc: Client) -> None:
    """Frames of 300 kB: a page of 10 becomes a few entries and a cursor to the rest."""
    big = json.dumps([2, "x", "DataTransfer", {"data": "y" * 300_000}])
    async with logger_running(settings) as logger:
        ids = await publish(
            nc, [frame_message("CP-D", Direction.UPSTREAM, big, at=T0 + n) for n in range(6)]
        )
        await logger.wait_inserted(6)
        reply = await nc.request(SUBJECTS.logs_query, b'{"limit": 10}', timeout=10)
        assert len(reply.data) <= nc.max_payload
        first = parse_reply(reply.data)
        assert isinstance(first, LogPage)
        assert 0 < len(first.entries) < 6
        assert first.next_cursor is not None
        walked = await all_pages(nc, limit=10)
        assert [e["frameId"] for e in walked] == ids[::-1]
        assert all(e["raw"] == big or e["truncated"] for e in walked)


# --- crashes and restarts ---------------------------------------------------------------


def logger_process(settings: Settings) -> subprocess.Popen[bytes]:
    """``python -m oye_logger.main`` with these settings in its environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OYE_") and k != "NATS_URL"}
    env.update(
        NATS_URL=str(settings.nats_url),
        OYE_DATA_DIR=str(settings.data_dir),
        OYE_RELAY_ID="logger-child",
        OYE_LOGGER_METRICS_PORT="0",
        OYE_LOG_LEVEL="WARNING",
    )
    if settings.db_url:
        env["OYE_DB_URL"] = settings.db_url
    return subprocess.Popen([sys.executable, "-m", "oye_logger.main"], env=env)


@contextlib.contextmanager
def killed_at_exit(process: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


async def steady_stream(nc: Client, count: int, per_second: float) -> list[str]:
    """Publish ``count`` frames at a steady rate, each confirmed by JetStream."""
    ids = []
    for n in range(count):
        message = frame_message("CP-S", Direction.UPSTREAM, f'[2,"s{n}","MeterValues",{{"n":{n}}}]')
        await publish_surely(nc, message)
        ids.append(message[2][h.FRAME_ID])
        await asyncio.sleep(1 / per_second)
    return ids


@pytest.mark.timeout(90)
async def test_a_logger_killed_mid_stream_and_restarted_stores_every_frame_once(
    db_settings: Settings, nc: Client
) -> None:
    """SIGKILL while frames flow: after a restart every frame is there, exactly once."""
    await bus.ensure_traffic_stream(nc, db_settings)
    # A short ack wait, so the batch the killed logger never acknowledged comes back soon.
    await ensure_consumer(nc.jetstream(), db_settings.stream_name, FAST)
    stream = asyncio.create_task(steady_stream(nc, 1500, per_second=600))
    with killed_at_exit(logger_process(db_settings)) as child:
        await eventually(lambda: _has_rows(db_settings, 300), seconds=30)
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert not stream.done(), "the stream should still be flowing when the logger dies"
    stored_by_the_dead = len(await stored_frame_ids(db_settings))
    async with logger_running(db_settings) as logger:
        ids = await stream
        await logger.wait_inserted(len(ids) - stored_by_the_dead, within=30)
        stored = await stored_frame_ids(db_settings)
    assert len(stored) == len(ids)
    assert set(stored) == set(ids)


async def _has_rows(settings: Settings, count: int) -> bool:
    return len(await stored_frame_ids(settings)) >= count


@pytest.mark.timeout(90)
async def test_nats_restarted_mid_stream_loses_and_doubles_nothing(
    db_settings: Settings, nats_server: NatsServer, nc: Client
) -> None:
    """NATS stops and comes back while frames flow: every frame stored exactly once."""
    async with logger_running(db_settings) as logger:
        stream = asyncio.create_task(steady_stream(nc, 1200, per_second=500))
        await logger.wait_inserted(300)
        nats_server.stop()
        await asyncio.sleep(1.0)  # NATS is away for a second: nothing to await
        nats_server.start()
        ids = await stream
        await logger.wait_inserted(len(ids), within=40)
        stored = await stored_frame_ids(db_settings)
    assert len(stored) == len(ids)
    assert set(stored) == set(ids)


async def test_several_loggers_share_the_stream_without_doubling(
    db_settings: Settings, nc: Client
) -> None:
    """Two loggers on one durable consumer split the frames; each frame is stored once."""
    messages = [
        frame_message("CP-E", Direction.UPSTREAM, f'[2,"e{n}","Heartbeat",{{}}]')
        for n in range(2000)
    ]
    shared = Progress()
    other = db_settings.model_copy(update={"relay_id": "other"})
    async with (
        logger_running(db_settings, progress=shared) as one,
        logger_running(other, progress=shared) as two,
    ):
        ids = await publish(nc, messages)
        await one.wait_inserted(len(ids))
        assert (one.progress, two.progress) == (shared, shared)
    stored = await stored_frame_ids(db_settings)
    assert sorted(stored) == sorted(ids)


# --- retention --------------------------------------------------------------------------


def stored_row(charge_point_id: str, n: int, at: float) -> LogRow:
    subject, body, headers = frame_message(
        charge_point_id, Direction.UPSTREAM, f'[2,"r{n}","Heartbeat",{{}}]', at=at
    )
    return RowMaker("oye").make(subject, body, headers, fallback=lambda: ("", 0))


async def test_retention_keeps_the_newest_per_charger_and_the_recent(
    db_settings: Settings,
) -> None:
    """Count per charger and age both hold after pruning in many small steps."""
    now = T0 + 30 * 86_400
    rows = [stored_row("CP-1", n, T0 + n) for n in range(20)]  # 30 days old
    rows += [stored_row("CP-2", n, now - 3600 * n) for n in range(12)]  # 0..11 hours old
    rows += [stored_row("CP-3", n, now - 86_400 * n) for n in range(4)]  # 0..3 days old
    async with open_store(db_settings) as store:
        assert await store.write(rows) == len(rows)
        retention = Retention(
            store, RetentionPolicy(keep_count=5, keep_days=2.5), batch=3, pause=0, clock=lambda: now
        )
        deleted = await retention.run_once()
        kept = await _frame_ids_by_charger(store)
    assert (
        kept
        == {
            "CP-2": [r.frame_id for r in rows[20:25]],  # the newest five of twelve
            "CP-3": [r.frame_id for r in rows[32:35]],  # younger than 2.5 days
        }
    )
    assert deleted == len(rows) - 8


async def _frame_ids_by_charger(store: Store) -> dict[str, list[str]]:
    kept: dict[str, list[str]] = {}
    async for row in store.query(LogQuery(), limit=1000, max_raw_chars=1000):
        kept.setdefault(row.charge_point_id, []).append(row.frame_id)
    return kept


async def test_the_running_logger_applies_retention(settings: Settings, nc: Client) -> None:
    """With ``OYE_LOG_RETENTION_COUNT=3`` a charger keeps its three newest frames."""
    capped = settings.model_copy(update={"log_retention_count": 3})
    messages = [
        frame_message("CP-R", Direction.UPSTREAM, f'[2,"r{n}","Heartbeat",{{}}]', at=T0 + n)
        for n in range(10)
    ]
    async with logger_running(capped, retention_interval=0.1) as logger:
        ids = await publish(nc, messages)
        await logger.wait_inserted(10)
        await eventually(lambda: _count_is(capped, 3), seconds=10)
        assert [e.frame_id for e in (await page(nc)).entries] == ids[:-4:-1]


async def _count_is(settings: Settings, count: int) -> bool:
    return len(await stored_frame_ids(settings)) == count


# --- the API router -----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def api(nc: Client) -> AsyncIterator[httpx.AsyncClient]:
    """The logs router on a bare app: the test's NATS, no authentication."""
    app = FastAPI()
    app.include_router(logs_route.router)
    app.dependency_overrides[get_nats] = lambda: nc
    app.dependency_overrides[require_user] = lambda: "tester"
    app.dependency_overrides[logs_route.get_log_subject] = lambda: SUBJECTS.logs_query
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


@pytest.mark.parametrize(
    ("params", "paths"),
    [
        ({"limit": "0"}, {"$.limit"}),
        ({"limit": "lots"}, {"$.limit"}),
        ({"direction": "UP"}, {"$.direction"}),
        ({"since": "last week"}, {"$.since"}),
        ({"since": "100", "until": "50"}, {"$.until"}),
        ({"cursor": "%%%"}, {"$.cursor"}),
        ({"limit": "5000", "kind": "gossip"}, {"$.limit", "$.kind"}),
    ],
)
async def test_the_api_answers_422_saying_what_is_wrong(
    nc: Client, params: dict[str, str], paths: set[str]
) -> None:
    """Bad parameters: 422 with every problem by path, before any logger is asked."""
    async with api(nc) as client:
        response = await client.get("/api/logs", params=params)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["detail"]
    assert {p["path"] for p in body["problems"]} == paths


async def test_the_export_answers_422_before_streaming(nc: Client) -> None:
    """The export validates its filters the same way, before the first line."""
    async with api(nc) as client:
        response = await client.get("/api/logs/export", params={"direction": "UP", "since": "?"})
    assert response.status_code == 422
    assert {p["path"] for p in response.json()["problems"]} == {"$.direction", "$.since"}


async def test_the_api_answers_503_when_no_logger_runs(nc: Client) -> None:
    """No logger subscribed: NATS says "no responders" at once, the API says 503."""
    async with api(nc) as client:
        response = await client.get("/api/logs")
    assert response.status_code == 503
    assert "logger" in response.json()["detail"]


async def test_the_api_pages_and_exports_json_lines(settings: Settings, nc: Client) -> None:
    """``GET /api/logs`` passes pages through; the export streams every entry, in order."""
    messages = [
        frame_message("CP-X", Direction.UPSTREAM, f'[2,"x{n}","Heartbeat",{{}}]', at=T0 + n)
        for n in range(2300)
    ]
    async with logger_running(settings) as logger, api(nc) as client:
        ids = await publish(nc, messages)
        await logger.wait_inserted(len(ids))
        response = await client.get("/api/logs", params={"chargePointId": "CP-X", "limit": "3"})
        assert response.status_code == 200
        body = response.json()
        assert [e["frameId"] for e in body["entries"]] == ids[:-4:-1]
        assert {"id", "charge_point_id", "direction", "payload", "timestamp"} <= set(
            body["entries"][0]
        )
        assert body["nextCursor"]

        export = await client.get("/api/logs/export", params={"chargePointId": "CP-X"})
        assert export.status_code == 200
        assert export.headers["content-type"].startswith("application/x-ndjson")
        lines = export.text.splitlines()
        assert [json.loads(line)["frameId"] for line in lines] == ids[::-1]

        since = await client.get("/api/logs/export", params={"since": str(T0 + 2297)})
        assert [json.loads(line)["frameId"] for line in since.text.splitlines()] == ids[:-3:-1]


# --- a real exchange through the relay --------------------------------------------------------


async def test_a_real_charger_relay_csms_exchange_is_logged(settings: Settings, nc: Client) -> None:
    """A charger's BootNotification through the relay, answered by a CSMS, is in the log."""
    from websockets.asyncio.client import connect

    from tests.support.raw_csms import RawCsms
    from tests.support.relay import relay_running

    async with RawCsms(
        answer=lambda frame: {
            "status": "Accepted",
            "interval": 300,
            "currentTime": "2025-06-01T12:00:00Z",
        }
    ) as csms:
        upstream = settings.model_copy(update={"upstream_url": csms.url})
        async with (
            logger_running(upstream) as logger,
            relay_running(upstream) as relay,
            connect(relay.url("CP-REAL"), subprotocols=["ocpp1.6"]) as charger,  # type: ignore[list-item]
        ):
            call = (
                '[2,"boot-1","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]'
            )
            await charger.send(call)
            answer = await charger.recv()
            async with asyncio.timeout(15):
                await logger.progress.wait_for(lambda p: p.inserted >= 3)  # connected + 2 frames
            frames = await page(
                nc, chargePointId="CP-REAL", kind="frame", action="BootNotification"
            )
    assert [(e.direction, e.message_type, e.message_id) for e in frames.entries] == [
        ("DOWNSTREAM", "CALLRESULT", "boot-1"),
        ("UPSTREAM", "CALL", "boot-1"),
    ]
    assert frames.entries[1].raw == call
    assert frames.entries[0].raw == answer
    assert frames.entries[1].relay == settings.relay_id


# --- shutdown and store failures -------------------------------------------------------------


@pytest.mark.timeout(60)
async def test_sigterm_commits_acknowledges_and_exits_within_seconds(
    settings: Settings, nc: Client
) -> None:
    """SIGTERM while frames flow: the child exits 0 within the deadline, nothing unacked."""
    await bus.ensure_traffic_stream(nc, settings)
    stream = asyncio.create_task(steady_stream(nc, 600, per_second=400))
    with killed_at_exit(logger_process(settings)) as child:
        await eventually(lambda: _has_rows(settings, 100), seconds=30)
        child.send_signal(signal.SIGTERM)
        exit_code = await asyncio.wait_for(asyncio.to_thread(child.wait), timeout=8)
    await stream
    assert exit_code == 0
    info = await nc.jetstream().consumer_info(settings.stream_name, "oye-logger")
    assert info.num_ack_pending == 0
    assert len(set(await stored_frame_ids(settings))) == info.delivered.stream_seq


class FlakyStore:
    """A store whose first writes fail, as a database that is restarting would."""

    def __init__(self, store: Store, failures: int) -> None:
        self.store = store
        self.failures = failures
        self.attempts = 0

    async def write(self, rows: Any) -> int:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise StoreError("database is restarting")
        return await self.store.write(rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


async def test_a_failing_store_delays_the_ack_and_loses_nothing(
    settings: Settings, nc: Client
) -> None:
    """Writes fail twice: the batch is retried, acknowledged only once it is committed."""
    await bus.ensure_traffic_stream(nc, settings)
    ids = await publish(
        nc,
        [
            frame_message("CP-F", Direction.UPSTREAM, f'[2,"f{n}","Heartbeat",{{}}]')
            for n in range(50)
        ],
    )
    options = ConsumerOptions(ack_wait=30, fetch_timeout=0.5, retry_delay=0.05)
    async with open_store(settings) as real:
        store = FlakyStore(real, failures=2)
        stop, progress = asyncio.Event(), Progress()
        consumer = LogConsumer(
            nc,
            store,
            stream=settings.stream_name,
            prefix="oye",
            options=options,
            progress=progress,
        )
        task = asyncio.create_task(consumer.run(stop))
        try:
            async with asyncio.timeout(20):
                await progress.wait_for(lambda p: p.inserted >= len(ids))
        finally:
            stop.set()
            await task
        assert store.attempts >= 3
        assert progress.batches >= 1
    info = await nc.jetstream().consumer_info(settings.stream_name, "oye-logger")
    assert (info.num_ack_pending, info.num_redelivered) == (0, 0)
    assert sorted(await stored_frame_ids(settings)) == sorted(ids)


async def test_a_batch_written_again_adds_nothing(db_settings: Settings) -> None:
    """Insert-or-ignore by frame id: a replayed batch, whole or in part, is a no-op."""
    rows = [stored_row("CP-W", n, T0 + n) for n in range(300)]
    async with open_store(db_settings) as store:
        assert await store.write(rows[:5]) == 5
        assert await store.write(rows) == 295
        assert await store.write(rows[100:250]) == 0
        assert await store.write([*rows[290:], rows[0]]) == 0
        assert await store.count() == 300
    assert sorted(await stored_frame_ids(db_settings)) == sorted(r.frame_id for r in rows)


@pytest.mark.postgres
async def test_postgresql_refusing_a_payload_stores_that_frame_without_one(
    settings: Settings,
) -> None:
    """JSON Python takes but jsonb refuses (a NUL escape): the batch still goes in."""
    good = stored_row("CP-J", 1, T0)
    subject, body, headers = frame_message(
        "CP-J", Direction.UPSTREAM, '[2,"r2","DataTransfer",{"data":"\\u0000"}]', at=T0 + 1
    )
    bad = RowMaker("oye").make(subject, body, headers, fallback=lambda: ("", 0))
    assert bad.is_json
    async with pg_schema() as dsn, open_store(settings.model_copy(update={"db_url": dsn})) as store:
        assert await store.write([good, bad]) == 2
        assert await store.write([good, bad]) == 0
        conn = await asyncpg.connect(dsn)
        try:
            payloads = await conn.fetch("SELECT frame_id, payload FROM logs ORDER BY time_us")
        finally:
            await conn.close()
    assert [(r["frame_id"], r["payload"] is None) for r in payloads] == [
        (good.frame_id, False),
        (bad.frame_id, True),
    ]
