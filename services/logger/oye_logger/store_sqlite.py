"""The SQLite log store: one file, WAL, a writer thread and a reader thread.

Each connection lives on its own single thread. A batch is one multi-row ``INSERT ...
ON CONFLICT (frame_id) DO NOTHING`` (a statement is its own transaction), run as one call
on the writer's thread: a cancelled caller can never leave a transaction half done, and
the thread takes the GIL twice per batch rather than twice per row as ``executemany``
would (which, next to a busy event loop, made it several times slower). Statements come in
a few sizes, each prepared once. Readers use their own connection, so queries never wait
behind a batch.

The ``payload`` column is the frame text itself when it is JSON (a generated column: the
file holds each frame once); ``json_extract(payload, '$[2]')`` reads the action of a CALL.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
from collections.abc import AsyncGenerator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from pathlib import Path
from typing import Any, TypeVar

from oye_logger.rows import LogRow
from oye_logger.store import (
    COLUMNS,
    INSERT_WIDTH,
    StoreError,
    StoreSetupError,
    insert_values,
    where_clause,
)
from oye_shared.logquery import EntryKind, LogQuery

log = logging.getLogger(__name__)

T = TypeVar("T")

BUSY_TIMEOUT_MS = 10_000
READ_CHUNK = 100
#: Checkpoint the WAL every ~40 MB rather than every 4 MB: fewer fsyncs, 40 % faster ingest.
WAL_AUTOCHECKPOINT_PAGES = 10_000
MAX_ROWS_PER_INSERT = 1000


def statement_sizes(rows: int, most: int) -> list[int]:
    """How a batch of ``rows`` is cut into INSERTs: full ones of ``most`` rows, then the
    rest by its binary digits (700 = 512 + 128 + 32 + 16 + 8 + 4).

    Preparing a 1,000-row statement costs ~15 ms, so only these few sizes are ever
    prepared, once each; an odd-sized batch costs a few more statements, never padding
    (which once doubled SQLite's work for a batch of 513).
    """
    sizes = [most] * (rows // most)
    rest = rows % most
    sizes += [1 << bit for bit in reversed(range(rest.bit_length())) if rest >> bit & 1]
    return sizes


#: Schema version n is reached by running MIGRATIONS[n - 1].
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE logs (
            id INTEGER PRIMARY KEY,
            frame_id TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            charge_point_id TEXT NOT NULL,
            direction TEXT,
            time_us INTEGER NOT NULL,
            message_type TEXT,
            message_id TEXT,
            action TEXT,
            error TEXT,
            subprotocol TEXT,
            relay TEXT,
            is_binary INTEGER NOT NULL DEFAULT 0,
            encoding TEXT NOT NULL DEFAULT 'utf-8',
            raw TEXT NOT NULL,
            is_json INTEGER NOT NULL DEFAULT 0,
            payload TEXT GENERATED ALWAYS AS (CASE WHEN is_json THEN raw END) VIRTUAL
        )
        """,
        # Every SQLite index ends with the rowid (id), so each serves "newest first" with
        # the (time_us, id) keyset without sorting.
        "CREATE INDEX logs_charge_point_time ON logs (charge_point_id, time_us)",
        "CREATE INDEX logs_time ON logs (time_us)",
        "CREATE INDEX logs_direction_time ON logs (direction, time_us)",
        "CREATE INDEX logs_action_time ON logs (action, time_us)",
        "CREATE INDEX logs_message_id ON logs (message_id)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

_ROW_MARKS = f"({', '.join('?' * (len(COLUMNS) + 1))})"


@functools.cache
def _insert_sql(rows: int) -> str:
    """One INSERT of ``rows`` rows: a batch is one statement (one step, one GIL hand-off)."""
    return (
        f"INSERT INTO logs ({', '.join(COLUMNS)}, is_json) VALUES "
        + ", ".join([_ROW_MARKS] * rows)
        + " ON CONFLICT (frame_id) DO NOTHING"
    )


_SELECT = (
    "SELECT id, frame_id, kind, charge_point_id, direction, time_us, message_type, "
    "message_id, action, error, subprotocol, relay, is_binary, encoding, "
    "substr(raw, 1, ?), length(raw), is_json FROM logs"
)
_CHARGE_POINTS = """
    WITH RECURSIVE cps(cp) AS (
        SELECT min(charge_point_id) FROM logs
        UNION ALL
        SELECT (SELECT min(charge_point_id) FROM logs WHERE charge_point_id > cp)
        FROM cps WHERE cp IS NOT NULL
    )
    SELECT cp FROM cps WHERE cp IS NOT NULL
"""


class _Connection:
    """One sqlite3 connection, used only from its own thread."""

    def __init__(self, path: Path, *, readonly: bool, name: str) -> None:
        self._path = path
        self._readonly = readonly
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._db: sqlite3.Connection | None = None

    async def run(self, function: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._call, function)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite {self._path}: {exc}") from exc

    def _call(self, function: Callable[[sqlite3.Connection], T]) -> T:
        if self._db is None:
            self._db = self._connect()
        return function(self._db)

    def _connect(self) -> sqlite3.Connection:
        if self._readonly:
            db = sqlite3.connect(
                f"{self._path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None
            )
        else:
            db = sqlite3.connect(self._path, isolation_level=None)
            db.execute("PRAGMA journal_mode = WAL")
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA cache_size = -32000")  # 32 MiB
        db.execute("PRAGMA temp_store = MEMORY")
        db.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
        return db

    async def close(self) -> None:
        def close(db: sqlite3.Connection) -> None:
            db.close()

        if self._db is not None:
            await self.run(close)
            self._db = None
        self._executor.shutdown(wait=True)


def _transaction(db: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    db.execute("BEGIN IMMEDIATE")
    try:
        result = work(db)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return result


def _migrate(db: sqlite3.Connection) -> int:
    db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")

    def step(db: sqlite3.Connection) -> int:
        (current,) = db.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
        if current > SCHEMA_VERSION:
            raise StoreSetupError(
                f"the log database is at schema version {current}; "
                f"this logger knows versions up to {SCHEMA_VERSION}"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version - 1]:
                db.execute(statement)
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        return int(current)

    return _transaction(db, step)


def _to_row(record: tuple[Any, ...], max_raw_chars: int) -> LogRow:
    (id_, frame_id, kind, cp, direction, time_us, mtype, mid, action, error) = record[:10]
    (subprotocol, relay, is_binary, encoding, raw, raw_length, is_json) = record[10:]
    truncated = raw_length > max_raw_chars
    return LogRow(
        frame_id=frame_id,
        kind=EntryKind(kind),
        charge_point_id=cp,
        direction=direction,
        time_us=time_us,
        message_type=mtype,
        message_id=mid,
        action=action,
        error=error,
        subprotocol=subprotocol,
        relay=relay,
        is_binary=bool(is_binary),
        encoding=encoding,
        raw=raw,
        is_json=bool(is_json) and not truncated,
        id=id_,
        truncated=truncated,
    )


class SqliteStore:
    """The log in one SQLite file (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer = _Connection(path, readonly=False, name="oye-log-writer")
        self._reader = _Connection(path, readonly=True, name="oye-log-reader")
        self._rows_per_insert = 1

    @classmethod
    async def open(cls, path: Path) -> SqliteStore:
        """Create the file if needed and bring its schema up to date."""
        path.parent.mkdir(parents=True, exist_ok=True)
        store = cls(path)
        try:
            before = await store._writer.run(_migrate)
            variables = await store._writer.run(
                lambda db: db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
            )
            store._rows_per_insert = max(
                1, min(MAX_ROWS_PER_INSERT, variables // (INSERT_WIDTH + 1))
            )
        except BaseException:
            await store.close()
            raise
        if before != SCHEMA_VERSION:
            log.info("log database %s migrated from v%d to v%d", path, before, SCHEMA_VERSION)
        return store

    async def write(self, rows: Sequence[LogRow]) -> int:
        if not rows:
            return 0
        statements = []
        start = 0
        for size in statement_sizes(len(rows), self._rows_per_insert):
            chunk = rows[start : start + size]
            start += size
            statements.append((size, list(chain.from_iterable(map(insert_values, chunk)))))

        def insert(db: sqlite3.Connection) -> int:
            return sum(
                db.execute(_insert_sql(size), values).rowcount for size, values in statements
            )

        if len(statements) == 1:  # one statement is a transaction of its own
            return await self._writer.run(insert)
        return await self._writer.run(lambda db: _transaction(db, insert))

    async def query(
        self, query: LogQuery, *, limit: int, max_raw_chars: int
    ) -> AsyncGenerator[LogRow, None]:
        where, params = where_clause(query, lambda _: "?")
        sql = f"{_SELECT}{where} ORDER BY time_us DESC, id DESC LIMIT ?"
        cursor = await self._reader.run(lambda db: db.execute(sql, [max_raw_chars, *params, limit]))
        try:
            while records := await self._reader.run(lambda _: cursor.fetchmany(READ_CHUNK)):
                for record in records:
                    yield _to_row(record, max_raw_chars)
        finally:
            await self._reader.run(lambda _: cursor.close())

    async def count(self) -> int:
        def count(db: sqlite3.Connection) -> int:
            return int(db.execute("SELECT count(*) FROM logs").fetchone()[0])

        return await self._reader.run(count)

    async def charge_points(self) -> list[str]:
        return await self._reader.run(
            lambda db: [cp for (cp,) in db.execute(_CHARGE_POINTS).fetchall()]
        )

    async def prune_older_than(self, cutoff_us: int, *, batch: int) -> int:
        sql = (
            "DELETE FROM logs WHERE id IN "
            "(SELECT id FROM logs WHERE time_us < ? ORDER BY time_us LIMIT ?)"
        )
        return await self._writer.run(
            lambda db: _transaction(db, lambda db: db.execute(sql, (cutoff_us, batch)).rowcount)
        )

    async def prune_charge_point(self, charge_point_id: str, *, keep: int, batch: int) -> int:
        def prune(db: sqlite3.Connection) -> int:
            oldest_kept = db.execute(
                "SELECT time_us, id FROM logs WHERE charge_point_id = ? "
                "ORDER BY time_us DESC, id DESC LIMIT 1 OFFSET ?",
                (charge_point_id, keep - 1),
            ).fetchone()
            if oldest_kept is None:
                return 0
            return db.execute(
                "DELETE FROM logs WHERE id IN (SELECT id FROM logs "
                "WHERE charge_point_id = ? AND (time_us, id) < (?, ?) "
                "ORDER BY time_us LIMIT ?)",
                (charge_point_id, *oldest_kept, batch),
            ).rowcount

        if keep < 1:
            raise ValueError("keep at least one row per charge point")
        return await self._writer.run(lambda db: _transaction(db, prune))

    async def close(self) -> None:
        await self._reader.close()
        await self._writer.close()
