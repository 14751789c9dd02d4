"""What every log store offers, how the one to use is chosen, and the SQL they share.

``OYE_DB_URL`` unset: SQLite in ``OYE_DATA_DIR/oye-log.sqlite3``; ``sqlite:///path``: SQLite
there; ``postgresql://...`` (or ``postgres://``): PostgreSQL. Extra URL parameters go to
PostgreSQL as session settings, so ``?search_path=oye`` puts the tables in schema ``oye``.

Errors::

    StoreError                  the database failed or is unreachable: retry later
     └── StoreSetupError        retrying cannot help: an unknown OYE_DB_URL, or a
                                schema migrated by a newer logger
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from oye_logger.rows import LogRow
from oye_shared.logquery import LogQuery
from oye_shared.settings import Settings

SQLITE_FILE = "oye-log.sqlite3"

#: The columns every store keeps, in insert order.
COLUMNS = (
    "frame_id",
    "kind",
    "charge_point_id",
    "direction",
    "time_us",
    "message_type",
    "message_id",
    "action",
    "error",
    "subprotocol",
    "relay",
    "is_binary",
    "encoding",
    "raw",
)


#: A :class:`LogRow` starts with the :data:`COLUMNS`, then ``is_json``.
INSERT_WIDTH = len(COLUMNS)
assert LogRow._fields[:INSERT_WIDTH] == COLUMNS, "LogRow must start with COLUMNS"
#: A row's values to insert, the columns then ``is_json`` (a slice taken in C: ``map`` it).
insert_values: Callable[[LogRow], tuple[Any, ...]] = operator.itemgetter(slice(0, INSERT_WIDTH + 1))


class StoreError(Exception):
    """The database failed or could not be reached; the operation may be retried."""


class StoreSetupError(StoreError):
    """The store cannot be used as configured (retrying will not help)."""


class Store(Protocol):
    """A log store: idempotent batch writes, keyset queries, retention in small steps."""

    async def write(self, rows: Sequence[LogRow]) -> int:
        """Insert the rows in one transaction, skipping frame ids already stored.

        Returns how many rows were new. Raises :class:`StoreError` and then has written
        nothing.
        """
        ...

    def query(
        self, query: LogQuery, *, limit: int, max_raw_chars: int
    ) -> AsyncGenerator[LogRow, None]:
        """Up to ``limit`` rows matching ``query``, newest first, read lazily.

        ``raw`` is cut to ``max_raw_chars`` characters (``truncated`` is then set).
        """
        ...

    async def count(self) -> int:
        """How many rows the store holds."""
        ...

    async def charge_points(self) -> list[str]:
        """Every charge point id that has rows."""
        ...

    async def prune_older_than(self, cutoff_us: int, *, batch: int) -> int:
        """Delete at most ``batch`` of the oldest rows older than ``cutoff_us``."""
        ...

    async def prune_charge_point(self, charge_point_id: str, *, keep: int, batch: int) -> int:
        """Delete at most ``batch`` rows of this charger beyond its newest ``keep``."""
        ...

    async def close(self) -> None: ...


def sqlite_path(settings: Settings) -> Path | None:
    """The SQLite file to use, or None when ``OYE_DB_URL`` names another database."""
    url = settings.db_url
    if not url:
        return settings.data_dir / SQLITE_FILE
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite://"))
    return None


def is_postgres_url(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("postgresql://", "postgres://"))


@contextlib.asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[Store]:
    """Open (and migrate) the store the settings name; close it on exit."""
    store: Store
    path = sqlite_path(settings)
    if path is not None:
        from oye_logger.store_sqlite import SqliteStore

        store = await SqliteStore.open(path)
    elif is_postgres_url(settings.db_url):
        from oye_logger.store_postgres import PostgresStore

        store = await PostgresStore.open(str(settings.db_url))
    else:
        raise StoreSetupError("OYE_DB_URL must be postgresql://... or sqlite:///path")
    try:
        yield store
    finally:
        await store.close()


def where_clause(
    query: LogQuery, placeholder: Callable[[int], str], first: int = 1
) -> tuple[str, list[Any]]:
    """The WHERE clause of a query (keyset position included) and its parameters.

    ``placeholder(n)`` spells the n-th parameter (``?`` for SQLite, ``$n`` for asyncpg).
    """
    conditions: list[str] = []
    params: list[Any] = []

    def add(condition: str, *values: Any) -> None:
        marks = [placeholder(first + len(params) + i) for i in range(len(values))]
        conditions.append(condition.format(*marks))
        params.extend(values)

    if query.charge_point_id is not None:
        add("charge_point_id = {}", query.charge_point_id)
    if query.direction is not None:
        add("direction = {}", query.direction.value)
    if query.kind is not None:
        add("kind = {}", query.kind.value)
    if query.action is not None:
        add("action = {}", query.action)
    if query.message_id is not None:
        add("message_id = {}", query.message_id)
    if query.since_us is not None:
        add("time_us > {}", query.since_us)
    if query.until_us is not None:
        add("time_us <= {}", query.until_us)
    if query.after is not None:
        add("(time_us, id) < ({}, {})", *query.after)
    return (" WHERE " + " AND ".join(conditions) if conditions else ""), params


def insert_params(row: LogRow) -> tuple[Any, ...]:
    """A row's values in :data:`COLUMNS` order."""
    return row[:INSERT_WIDTH]
