"""The logger's side of ``{prefix}.logs.query``: a query in, one page (or the error) out.

Every logger serves the subject in the queue group ``oye-logger``. A page is built entry
by entry and stops before it would exceed the NATS payload limit (then ``nextCursor``
says where to go on); one frame too big on its own is cut (``truncated``).
"""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import UTC, datetime, timedelta

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from oye_logger.rows import BASE64, LogRow
from oye_logger.store import Store, StoreError
from oye_shared.bus import confirmed
from oye_shared.headers import rfc3339
from oye_shared.logquery import (
    QUEUE_GROUP,
    ErrorCode,
    LogEntry,
    LogQuery,
    LogQueryError,
    encode_cursor,
    validate_query,
)

log = logging.getLogger(__name__)

#: Room kept free in a reply for the page's envelope and the NATS framing.
ENVELOPE_RESERVE = 1024
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def entry_of(row: LogRow) -> LogEntry:
    """The wire entry of a stored row (``payload`` is the frame parsed, when it is JSON)."""
    assert row.id is not None, "only stored rows have an entry"
    return LogEntry(
        id=row.id,
        charge_point_id=row.charge_point_id,
        direction=row.direction,
        payload=json.loads(row.raw) if row.is_json else None,
        timestamp=row.time_us / 1_000_000,
        frame_id=row.frame_id,
        time=rfc3339_us(row.time_us),
        kind=row.kind,
        message_type=row.message_type,
        message_id=row.message_id,
        action=row.action,
        error=row.error,
        raw=row.raw,
        encoding=row.encoding,
        binary=row.is_binary,
        subprotocol=row.subprotocol,
        relay=row.relay,
        truncated=row.truncated,
    )


def rfc3339_us(time_us: int) -> str:
    return rfc3339(_EPOCH + timedelta(microseconds=time_us))


def encode_entry(entry: LogEntry) -> bytes:
    return entry.model_dump_json(by_alias=True).encode()


def shrink(entry: LogEntry, budget: int) -> bytes:
    """The entry encoded in at most ``budget`` bytes: payload dropped, raw cut."""
    entry = entry.model_copy(update={"payload": None, "truncated": True})
    encoded = encode_entry(entry)
    raw = entry.raw
    while len(encoded) > budget and raw:
        fixed = len(encoded) - len(json.dumps(raw, ensure_ascii=False).encode())
        room = max(budget - fixed, 0)
        # Cut in proportion to how much too long the encoded text is, then re-measure.
        keep = min(len(raw) - 1, len(raw) * room // max(len(encoded) - fixed, 1))
        if entry.encoding == BASE64:
            keep -= keep % 4  # stay decodable
        raw = raw[: max(keep, 0)]
        entry = entry.model_copy(update={"raw": raw})
        encoded = encode_entry(entry)
    return encoded


async def page_of(store: Store, query: LogQuery, *, max_bytes: int) -> bytes:
    """One encoded :class:`~oye_shared.logquery.LogPage`, at most ``max_bytes`` long."""
    budget = max_bytes - ENVELOPE_RESERVE
    parts: list[bytes] = []
    size = 0
    last: LogRow | None = None
    more = False
    rows = store.query(query, limit=query.limit + 1, max_raw_chars=budget)
    async with contextlib.aclosing(rows):
        async for row in rows:
            if len(parts) == query.limit:
                more = True
                break
            encoded = encode_entry(entry_of(row))
            if size + len(encoded) + 1 > budget:
                if parts:
                    more = True
                    break
                encoded = shrink(entry_of(row), budget)
            parts.append(encoded)
            size += len(encoded) + 1
            last = row
    cursor = None
    if more and last is not None and last.id is not None:
        cursor = encode_cursor(last.time_us, last.id)
    return b'{"entries":[%s],"nextCursor":%s}' % (b",".join(parts), json.dumps(cursor).encode())


class QueryService:
    """Answers log queries on NATS from one store."""

    def __init__(self, nc: Client, store: Store, *, subject: str) -> None:
        self.nc = nc
        self.store = store
        self.subject = subject
        self._sub: Subscription | None = None

    async def start(self) -> None:
        """Subscribe; draining the connection ends the subscription gracefully."""
        self._sub = await self.nc.subscribe(self.subject, queue=QUEUE_GROUP, cb=self._handle)
        await confirmed(self.nc)  # the server knows the subscription before we say we serve

    async def answer(self, data: bytes) -> bytes:
        """The reply to one request body."""
        query = validate_query(data)
        if isinstance(query, LogQueryError):
            return query.model_dump_json(by_alias=True).encode()
        try:
            return await page_of(self.store, query, max_bytes=self.nc.max_payload)
        except StoreError as exc:
            log.warning("log query failed: %s", exc)
            error = LogQueryError(error="the log store is unavailable", code=ErrorCode.UNAVAILABLE)
            return error.model_dump_json(by_alias=True).encode()

    async def _handle(self, msg: Msg) -> None:
        if not msg.reply:
            return
        try:
            reply = await self.answer(msg.data)
        except Exception:  # a bug must cost one answer, not the asker's whole timeout
            log.exception("log query failed")
            error = LogQueryError(error="the logger failed to answer", code=ErrorCode.UNAVAILABLE)
            reply = error.model_dump_json(by_alias=True).encode()
        try:
            await msg.respond(reply)
        except nats.errors.Error as exc:
            log.warning("could not answer a log query: %s", exc)
