"""The PostgreSQL log store (asyncpg).

A batch is one transaction: a binary ``COPY`` of its rows into a temporary table of the
session, then ``INSERT ... SELECT`` from it, skipping frame ids already stored.
``payload`` is the frame parsed as ``jsonb``; in the rare case PostgreSQL refuses a text
Python accepted (``\\u0000`` in a string, a number out of range), the batch is retried
row by row and such a row is stored with a NULL payload instead of blocking the stream.

The tables live in the first schema of the session's ``search_path``: give
``?search_path=name`` in ``OYE_DB_URL`` to choose it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

import asyncpg

from oye_logger.rows import LogRow
from oye_logger.store import (
    COLUMNS,
    StoreError,
    StoreSetupError,
    insert_params,
    insert_values,
    where_clause,
)
from oye_shared.logquery import EntryKind, LogQuery

log = logging.getLogger(__name__)

T = TypeVar("T")

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Conn = PoolConnectionProxy[asyncpg.Record]

READ_CHUNK = 100
#: Any constant will do: it only keeps two loggers from migrating at the same time.
MIGRATION_LOCK = 0x4F59455F4C4F47  # "OYE_LOG"

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE logs (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            frame_id TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            charge_point_id TEXT NOT NULL,
            direction TEXT,
            time_us BIGINT NOT NULL,
            message_type TEXT,
            message_id TEXT,
            action TEXT,
            error TEXT,
            subprotocol TEXT,
            relay TEXT,
            is_binary BOOLEAN NOT NULL DEFAULT false,
            encoding TEXT NOT NULL DEFAULT 'utf-8',
            raw TEXT NOT NULL,
            payload JSONB
        )
        """,
        "CREATE INDEX logs_charge_point_time ON logs (charge_point_id, time_us, id)",
        "CREATE INDEX logs_time ON logs (time_us, id)",
        "CREATE INDEX logs_direction_time ON logs (direction, time_us, id)",
        "CREATE INDEX logs_action_time ON logs (action, time_us, id)",
        "CREATE INDEX logs_message_id ON logs (message_id)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

_TYPES = {"time_us": "bigint", "is_binary": "boolean"}
#: A batch is copied (binary COPY) into this table of the session, then inserted from it:
#: asyncpg encodes COPY rows field by field, where ``unnest`` arrays cost two
#: ``collections.abc`` checks per element (a quarter of the logger's time). The rows go
#: at the transaction's end.
_BATCH_TABLE = "oye_log_batch"
_CREATE_BATCH_TABLE = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {_BATCH_TABLE} ("
    + ", ".join(f"{c} {_TYPES.get(c, 'text')}" for c in COLUMNS)
    + ", is_json boolean) ON COMMIT DELETE ROWS"
)
#: The payload is ``raw`` again: copied as a flag rather than a second copy of the text.
_INSERT_BATCH = (
    f"INSERT INTO logs ({', '.join(COLUMNS)}, payload) "
    f"SELECT {', '.join(COLUMNS)}, CASE WHEN is_json THEN raw::jsonb END FROM {_BATCH_TABLE} "
    "ON CONFLICT (frame_id) DO NOTHING"
)
_INSERT_ONE = (
    f"INSERT INTO logs ({', '.join(COLUMNS)}, payload) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(COLUMNS) + 1))}, "
    f"${len(COLUMNS) + 1}::text::jsonb) ON CONFLICT (frame_id) DO NOTHING"
)
_SELECT = (
    "SELECT id, frame_id, kind, charge_point_id, direction, time_us, message_type, "
    "message_id, action, error, subprotocol, relay, is_binary, encoding, "
    "left(raw, $1) AS raw, length(raw) AS raw_length, payload IS NOT NULL AS is_json FROM logs"
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

#: What asyncpg raises when the server or the connection fails.
_FAILURES = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


def _row_count(status: str) -> int:
    """The row count of an ``INSERT 0 n`` or ``DELETE n`` status."""
    return int(status.rsplit(" ", 1)[-1])


def _to_row(record: asyncpg.Record, max_raw_chars: int) -> LogRow:
    truncated = record["raw_length"] > max_raw_chars
    return LogRow(
        frame_id=record["frame_id"],
        kind=EntryKind(record["kind"]),
        charge_point_id=record["charge_point_id"],
        direction=record["direction"],
        time_us=record["time_us"],
        message_type=record["message_type"],
        message_id=record["message_id"],
        action=record["action"],
        error=record["error"],
        subprotocol=record["subprotocol"],
        relay=record["relay"],
        is_binary=record["is_binary"],
        encoding=record["encoding"],
        raw=record["raw"],
        is_json=record["is_json"] and not truncated,
        id=record["id"],
        truncated=truncated,
    )


class PostgresStore:
    """The log in PostgreSQL (see the module docstring)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, url: str, *, max_connections: int = 4) -> PostgresStore:
        """Connect and bring the schema up to date."""
        try:
            pool = await asyncpg.create_pool(
                url, min_size=1, max_size=max_connections, init=_create_batch_table
            )
        except _FAILURES as exc:
            raise StoreError(f"PostgreSQL: {exc}") from exc
        store = cls(pool)
        try:
            await store._run(store._migrate)
        except BaseException:
            await pool.close()
            raise
        return store

    async def _run(self, work: Callable[[Conn], Awaitable[T]]) -> T:
        try:
            async with self._pool.acquire() as conn:
                return await work(conn)
        except _FAILURES as exc:
            raise StoreError(f"PostgreSQL: {exc}") from exc

    async def _migrate(self, conn: Conn) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                "version INTEGER NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            current = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
            if current > SCHEMA_VERSION:
                raise StoreSetupError(
                    f"the log database is at schema version {current}; "
                    f"this logger knows versions up to {SCHEMA_VERSION}"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version - 1]:
                    await conn.execute(statement)
                await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", version)
        if current != SCHEMA_VERSION:
            log.info("log database migrated from v%d to v%d", current, SCHEMA_VERSION)

    async def write(self, rows: Sequence[LogRow]) -> int:
        if not rows:
            return 0
        # The columns, then is_json: a LogRow starts with them.
        records = list(map(insert_values, rows))

        async def insert(conn: Conn) -> int:
            try:
                async with conn.transaction():
                    await conn.copy_records_to_table(_BATCH_TABLE, records=records)
                    return _row_count(await conn.execute(_INSERT_BATCH))
            except asyncpg.DataError as exc:
                log.warning(
                    "a batch of %d rows was refused (%s); writing row by row", len(rows), exc
                )
            async with conn.transaction():
                return sum([await _insert_one(conn, row) for row in rows])

        return await self._run(insert)

    async def query(
        self, query: LogQuery, *, limit: int, max_raw_chars: int
    ) -> AsyncGenerator[LogRow, None]:
        where, params = where_clause(query, lambda n: f"${n}", first=2)
        sql = f"{_SELECT}{where} ORDER BY time_us DESC, id DESC LIMIT ${len(params) + 2}"
        try:
            async with self._pool.acquire() as conn, conn.transaction(readonly=True):
                cursor = conn.cursor(sql, max_raw_chars, *params, limit, prefetch=READ_CHUNK)
                async for record in cursor:
                    yield _to_row(record, max_raw_chars)
        except _FAILURES as exc:
            raise StoreError(f"PostgreSQL: {exc}") from exc

    async def count(self) -> int:
        async def count(conn: Conn) -> int:
            return int(await conn.fetchval("SELECT count(*) FROM logs"))

        return await self._run(count)

    async def charge_points(self) -> list[str]:
        async def charge_points(conn: Conn) -> list[str]:
            return [record["cp"] for record in await conn.fetch(_CHARGE_POINTS)]

        return await self._run(charge_points)

    async def prune_older_than(self, cutoff_us: int, *, batch: int) -> int:
        sql = (
            "DELETE FROM logs WHERE id IN "
            "(SELECT id FROM logs WHERE time_us < $1 ORDER BY time_us LIMIT $2)"
        )

        async def prune(conn: Conn) -> int:
            return _row_count(await conn.execute(sql, cutoff_us, batch))

        return await self._run(prune)

    async def prune_charge_point(self, charge_point_id: str, *, keep: int, batch: int) -> int:
        if keep < 1:
            raise ValueError("keep at least one row per charge point")

        async def prune(conn: Conn) -> int:
            oldest_kept = await conn.fetchrow(
                "SELECT time_us, id FROM logs WHERE charge_point_id = $1 "
                "ORDER BY time_us DESC, id DESC LIMIT 1 OFFSET $2",
                charge_point_id,
                keep - 1,
            )
            if oldest_kept is None:
                return 0
            return _row_count(
                await conn.execute(
                    "DELETE FROM logs WHERE id IN (SELECT id FROM logs "
                    "WHERE charge_point_id = $1 AND (time_us, id) < ($2, $3) "
                    "ORDER BY time_us, id LIMIT $4)",
                    charge_point_id,
                    oldest_kept["time_us"],
                    oldest_kept["id"],
                    batch,
                )
            )

        return await self._run(prune)

    async def close(self) -> None:
        await self._pool.close()


async def _create_batch_table(conn: asyncpg.Connection) -> None:
    """Every pooled connection gets its own batch table (temporary tables are per session)."""
    await conn.execute(_CREATE_BATCH_TABLE)


async def _insert_one(conn: Conn, row: LogRow) -> int:
    """Insert one row; if its payload is refused, insert it without one."""
    params = insert_params(row)
    if row.is_json:
        try:
            async with conn.transaction():
                return _row_count(await conn.execute(_INSERT_ONE, *params, row.raw))
        except asyncpg.DataError:
            log.warning(
                "frame %s: PostgreSQL refused its JSON; stored without payload", row.frame_id
            )
    return _row_count(await conn.execute(_INSERT_ONE, *params, None))
