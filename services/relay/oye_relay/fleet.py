"""Charger states and this relay's liveness in NATS KV, written off the forwarding path.

Sessions mark their state dirty; one task writes dirty states in small concurrent
batches. A charger that disconnects is written OFFLINE only if the entry still belongs to
its session, so a charger that moved to another relay is not marked OFFLINE by the old
one. This relay's entry in the relays bucket is refreshed every few seconds and expires
by TTL when the relay dies, which tells the API that its chargers are gone too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from oye_shared.bus import cancellation_checkpoint
from oye_shared.headers import now_rfc3339
from oye_shared.kv import get_entry, open_state_buckets
from oye_shared.state import (
    RELAY_REFRESH_SECONDS,
    ChargerState,
    ChargerStatus,
    RelayState,
    encode_state,
)
from oye_shared.subjects import kv_key

log = logging.getLogger(__name__)

BATCH = 64
DEBOUNCE = 0.1


class FleetState:
    def __init__(self, relay_id: str, prefix: str, count_chargers: Callable[[], int]) -> None:
        self.relay_id = relay_id
        self.prefix = prefix
        self.count_chargers = count_chargers
        self.started = now_rfc3339()
        self._dirty: dict[str, ChargerState] = {}
        self._gone: dict[str, ChargerState] = {}
        self._wake = asyncio.Event()
        self._chargers: KeyValue | None = None
        self._relays: KeyValue | None = None

    def changed(self, state: ChargerState) -> None:
        self._dirty[state.charge_point_id] = state
        self._wake.set()

    def gone(self, state: ChargerState) -> None:
        self._dirty.pop(state.charge_point_id, None)
        self._gone[state.charge_point_id] = state
        self._wake.set()

    async def run(self, nc: Client) -> None:
        """Open the buckets, then write states and liveness until cancelled."""
        _, self._chargers, self._relays = await open_state_buckets(nc, self.prefix)
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            while True:
                cancellation_checkpoint()
                await self._wake.wait()
                await asyncio.sleep(DEBOUNCE)  # gather a burst of changes into one pass
                self._wake.clear()
                await self._flush()
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def shutdown(self) -> None:
        """Write what is pending and withdraw this relay (a clean stop)."""
        with contextlib.suppress(NatsError, TimeoutError, OSError):
            async with asyncio.timeout(3):
                await self._flush()
                if self._relays is not None:
                    await self._relays.delete(self.relay_id)

    async def _flush(self) -> None:
        if self._chargers is None:
            return
        dirty, self._dirty = self._dirty, {}
        gone, self._gone = self._gone, {}
        try:
            await _in_batches(self._put, list(dirty.values()))
            # Concurrently too: a relay losing thousands of chargers at once (a network
            # cut, a restart) took a round trip or two per charger, one after the other.
            await _in_batches(self._put_offline, list(gone.values()))
        except (NatsError, OSError, TimeoutError) as exc:
            log.warning("could not write charger states to NATS KV: %s", exc)
            for state in dirty.values():
                self._dirty.setdefault(state.charge_point_id, state)
            for state in gone.values():
                self._gone.setdefault(state.charge_point_id, state)

    async def _put(self, state: ChargerState) -> None:
        assert self._chargers is not None
        key = kv_key(state.charge_point_id)
        if state.boot is None:
            # Chargers may reconnect without booting again: keep what the last boot said.
            entry = await get_entry(self._chargers, key)
            if entry is not None and entry.value is not None:
                state.boot = ChargerState.model_validate_json(entry.value).boot
        await self._chargers.put(key, encode_state(state))

    async def _put_offline(self, state: ChargerState) -> None:
        assert self._chargers is not None
        key = kv_key(state.charge_point_id)
        entry = await get_entry(self._chargers, key)
        if entry is not None and entry.value is not None:
            current = ChargerState.model_validate_json(entry.value)
            if current.session_id != state.session_id:
                return  # the charger has moved on to a newer connection
        offline = state.model_copy(
            update={"status": ChargerStatus.OFFLINE, "last_seen": now_rfc3339()}
        )
        with contextlib.suppress(KeyWrongLastSequenceError):
            await self._chargers.update(
                key, encode_state(offline), last=entry.revision if entry else 0
            )

    async def _heartbeat(self) -> None:
        while True:
            cancellation_checkpoint()
            if self._relays is not None:
                state = RelayState(
                    relay=self.relay_id, started=self.started, chargers=self.count_chargers()
                )
                try:
                    await self._relays.put(self.relay_id, encode_state(state))
                except (NatsError, OSError, TimeoutError) as exc:
                    log.warning("could not refresh this relay's liveness: %s", exc)
            await asyncio.sleep(RELAY_REFRESH_SECONDS)


async def _in_batches(
    write: Callable[[ChargerState], Awaitable[None]], states: list[ChargerState]
) -> None:
    for start in range(0, len(states), BATCH):
        await asyncio.gather(*(write(state) for state in states[start : start + BATCH]))
