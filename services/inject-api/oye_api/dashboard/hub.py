"""The live feed's one set of NATS subscriptions in this API process, shared by every browser.

While at least one browser is connected, the hub

* watches the chargers bucket (``{P}_chargers``, written by the relays) and sends each
  change to every browser, with the status the API reports (OFFLINE when the charger's
  relay stopped refreshing its liveness entry, checked every
  :data:`~oye_shared.state.RELAY_REFRESH_SECONDS` and whenever a charger names a relay
  not seen yet: a relay's entry expires without a KV event);
* subscribes ``{prefix}.frames.>`` and ``{prefix}.events.>`` (core NATS, no stream) and
  hands each frame to the browsers whose filter wants it (each event to all), encoded
  once.

With no browser connected it holds no subscription at all. The NATS callbacks never wait
for a browser: each one has a bounded :class:`~oye_api.dashboard.feed.ClientQueue`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue
from pydantic import ValidationError

from oye_api.dashboard.feed import (
    ClientQueue,
    FeedFilter,
    charger_message,
    chargers_message,
    event_item,
    frame_item,
    removed_message,
)
from oye_api.fleet import effective_state, live_relays
from oye_api.kv import Buckets
from oye_shared import headers as h
from oye_shared.state import RELAY_REFRESH_SECONDS, ChargerState, ChargerStatus
from oye_shared.subjects import Subjects, decode_token, kv_key_decode

log = logging.getLogger(__name__)

#: NATS's own buffer for the hub's subscriptions (our callbacks only enqueue, so it stays
#: near empty; beyond it NATS drops and reports a slow consumer).
PENDING_MESSAGES = 65_536
PENDING_BYTES = 64 * 1024 * 1024
#: At most one extra liveness read per this many seconds for relays not seen yet.
UNKNOWN_RELAY_RECHECK = 1.0


class LiveHub:
    def __init__(self, nc: Client, buckets: Buckets, prefix: str) -> None:
        self._nc = nc
        self._chargers_kv: KeyValue = buckets.chargers
        self._buckets = buckets
        self._subjects = Subjects(prefix)
        self._prefix_tokens = len(prefix.split("."))
        self._clients: set[ClientQueue] = set()
        self._lock = asyncio.Lock()
        self._subscriptions: list[Subscription] = []
        self._watcher: KeyValue.KeyWatcher | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._states: dict[str, ChargerState] = {}
        self._shown: dict[str, ChargerStatus] = {}
        self._live: set[str] = set()
        self._live_checked = 0.0

    @property
    def clients(self) -> int:
        return len(self._clients)

    @property
    def running(self) -> bool:
        """Whether the hub holds its NATS subscriptions (only while a browser is there)."""
        return bool(self._subscriptions)

    @contextlib.asynccontextmanager
    async def joined(self, feed_filter: FeedFilter | None = None) -> AsyncIterator[ClientQueue]:
        """A browser's queue for as long as the block runs; the first starts the hub, the
        last stops it."""
        client = ClientQueue(feed_filter=feed_filter)
        async with self._lock:
            if not self._clients:
                await self._start()
            self._clients.add(client)
        try:
            yield client
        finally:
            async with self._lock:
                self._clients.discard(client)
                if not self._clients:
                    await self._stop()

    def snapshot(self) -> str:
        """Every charger as the API reports it, sorted by id."""
        return chargers_message(
            [self._public(self._effective(self._states[cp])) for cp in sorted(self._states)]
        )

    # -- start and stop ------------------------------------------------------------------

    async def _start(self) -> None:
        self._live = await live_relays(self._buckets)
        self._live_checked = time.monotonic()
        watcher = self._watcher = await self._chargers_kv.watchall()
        try:
            async for entry in watcher:
                if entry is None:
                    break  # the current values are in
                self._apply(entry, announce=False)
            for subject, callback in (
                (self._subjects.all_frames, self._on_frame),
                (self._subjects.all_events, self._on_event),
            ):
                self._subscriptions.append(
                    await self._nc.subscribe(
                        subject,
                        cb=callback,
                        pending_msgs_limit=PENDING_MESSAGES,
                        pending_bytes_limit=PENDING_BYTES,
                    )
                )
        except BaseException:
            await self._stop()
            raise
        self._spawn(self._follow_chargers(watcher), "dashboard-chargers")
        self._spawn(self._follow_relays(), "dashboard-relays")
        log.info("dashboard live feed started")

    async def _stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        self._tasks.clear()
        for subscription in self._subscriptions:
            with contextlib.suppress(nats.errors.Error):
                await subscription.unsubscribe()
        self._subscriptions.clear()
        if self._watcher is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._watcher.stop()  # type: ignore[no-untyped-call]
            self._watcher = None
        self._states.clear()
        self._shown.clear()
        log.info("dashboard live feed stopped (no browser connected)")

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("dashboard: %s failed: %r", task.get_name(), task.exception())

    # -- chargers ------------------------------------------------------------------------

    async def _follow_chargers(self, watcher: KeyValue.KeyWatcher) -> None:
        async for entry in watcher:
            if entry is None:
                continue
            if self._needs_relay_check(entry):
                await self._refresh_live(force=False)
            self._apply(entry, announce=True)

    def _needs_relay_check(self, entry: KeyValue.Entry) -> bool:
        if entry.operation in (KV_DEL, KV_PURGE) or not entry.value:
            return False
        try:
            state = ChargerState.model_validate_json(entry.value)
        except ValidationError:
            return False
        return state.status is ChargerStatus.ONLINE and state.relay not in self._live

    def _apply(self, entry: KeyValue.Entry, *, announce: bool) -> None:
        if entry.operation in (KV_DEL, KV_PURGE) or not entry.value:
            gone = _charge_point_of_key(entry.key)
            if gone is not None and gone in self._states:
                del self._states[gone]
                self._shown.pop(gone, None)
                if announce:
                    self._broadcast_charger(gone, removed_message(gone))
            return
        try:
            state = ChargerState.model_validate_json(entry.value)
        except ValidationError:
            log.warning("dashboard: unreadable charger entry %r", entry.key)
            return
        self._states[state.charge_point_id] = state
        effective = self._effective(state)
        self._shown[state.charge_point_id] = effective.status
        if announce:
            self._broadcast_charger(state.charge_point_id, charger_message(self._public(effective)))

    async def _follow_relays(self) -> None:
        while True:
            await asyncio.sleep(RELAY_REFRESH_SECONDS)
            await self._refresh_live(force=True)

    async def _refresh_live(self, *, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._live_checked < UNKNOWN_RELAY_RECHECK:
            return
        self._live_checked = now
        try:
            self._live = await live_relays(self._buckets)
        except nats.errors.Error as exc:
            log.warning("dashboard: cannot read the relays bucket: %s", exc)
            return
        for cp, state in self._states.items():
            effective = self._effective(state)
            if self._shown.get(cp) is not effective.status:
                self._shown[cp] = effective.status
                self._broadcast_charger(cp, charger_message(self._public(effective)))

    def _effective(self, state: ChargerState) -> ChargerState:
        return effective_state(state, self._live)

    @staticmethod
    def _public(state: ChargerState) -> dict[str, Any]:
        return state.model_dump(by_alias=True, mode="json")

    def _broadcast_charger(self, charge_point_id: str, message: str) -> None:
        for client in self._clients:
            client.offer_charger(charge_point_id, message)

    # -- traffic -------------------------------------------------------------------------

    def _charge_point(self, msg: Msg) -> str | None:
        named = (msg.headers or {}).get(h.CHARGE_POINT)
        if named:
            return named
        parts = msg.subject.split(".")
        try:
            return decode_token(parts[self._prefix_tokens + 1])
        except (IndexError, ValueError):
            return None

    async def _on_frame(self, msg: Msg) -> None:
        headers = msg.headers or {}
        cp = self._charge_point(msg)
        if cp is None:
            return
        direction, action = headers.get(h.DIRECTION), headers.get(h.ACTION)
        wanted = [c for c in self._clients if c.filter.accepts(cp, direction, action)]
        if wanted:
            item = frame_item(cp, headers, msg.data)
            for client in wanted:
                client.offer(item)

    async def _on_event(self, msg: Msg) -> None:
        cp = self._charge_point(msg)
        if cp is None:
            return
        kind = msg.subject.rsplit(".", 1)[-1]
        item = event_item(cp, kind, msg.headers or {}, msg.data)
        for client in self._clients:  # events are few: every browser gets them all
            client.offer(item)


def _charge_point_of_key(key: str) -> str | None:
    try:
        return kv_key_decode(key)
    except (ValueError, UnicodeDecodeError):
        return None
