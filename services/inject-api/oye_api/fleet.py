"""The chargers as the relays left them in NATS KV, with what the API can tell on top.

A relay writes each charger's :class:`ChargerState` and refreshes its own entry in the
relays bucket every few seconds. When a relay dies, its entry expires (TTL) but its
chargers' entries still say ONLINE: :func:`effective_state` reports those OFFLINE.

A relay writes a change a moment after it happened (in batches); what must act on a
connected charger now asks the relay holding it (:func:`held_charger`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import nats.errors
from nats.aio.client import Client
from pydantic import ValidationError

from oye_api.kv import Buckets, get_entry, read_all
from oye_shared.inject import QUERY, STATE_QUERY
from oye_shared.state import ChargerState, ChargerStatus, RelayState
from oye_shared.subjects import Subjects, kv_key

log = logging.getLogger(__name__)

#: How long the relay holding a charger has to tell its state.
QUERY_TIMEOUT = 2.0


def effective_state(state: ChargerState, live_relays: Iterable[str]) -> ChargerState:
    """The state, OFFLINE if the relay that claims the charger is no longer alive."""
    if state.status is ChargerStatus.ONLINE and state.relay not in set(live_relays):
        return state.model_copy(update={"status": ChargerStatus.OFFLINE})
    return state


async def live_relays(buckets: Buckets) -> set[str]:
    """The ids of the relays whose entries have not expired."""
    live: set[str] = set()
    for key, value in (await read_all(buckets.relays)).items():
        live.add(key)
        try:
            live.add(RelayState.model_validate_json(value).relay)
        except ValidationError:
            log.warning("relays bucket: unreadable entry %r", key)
    return live


def _parse(key: str, value: bytes) -> ChargerState | None:
    try:
        return ChargerState.model_validate_json(value)
    except ValidationError:
        log.warning("chargers bucket: unreadable entry %r", key)
        return None


async def all_chargers(buckets: Buckets, live: set[str] | None = None) -> list[ChargerState]:
    """Every charger ever seen, sorted by id, with its effective status."""
    if live is None:
        live = await live_relays(buckets)
    states = [_parse(key, value) for key, value in (await read_all(buckets.chargers)).items()]
    return sorted(
        (effective_state(state, live) for state in states if state is not None),
        key=lambda state: state.charge_point_id,
    )


async def one_charger(buckets: Buckets, charge_point_id: str) -> ChargerState | None:
    entry = await get_entry(buckets.chargers, kv_key(charge_point_id))
    if entry is None or entry.value is None:
        return None
    state = _parse(entry.key, entry.value)
    return None if state is None else effective_state(state, await live_relays(buckets))


async def held_charger(nc: Client, prefix: str, charge_point_id: str) -> ChargerState | None:
    """The charger's state from the relay holding it now; None when no relay holds it (or
    its relay did not answer: the caller falls back to the KV entry)."""
    try:
        message = await nc.request(
            Subjects(prefix).inject(charge_point_id),
            b"",
            timeout=QUERY_TIMEOUT,
            headers={QUERY: STATE_QUERY},
        )
    except nats.errors.NoRespondersError:
        return None
    except nats.errors.TimeoutError:
        log.warning("the relay holding %r did not tell its state in time", charge_point_id)
        return None
    try:
        return ChargerState.model_validate_json(message.data)
    except ValidationError:  # a relay that does not know the query yet (a rolling upgrade)
        log.info("the relay holding %r did not tell its state", charge_point_id)
        return None


async def current_charger(
    nc: Client, buckets: Buckets, prefix: str, charge_point_id: str
) -> ChargerState | None:
    """The charger as its relay holds it now, else as the KV entry left it (offline)."""
    held = await held_charger(nc, prefix, charge_point_id)
    if held is None:
        return await one_charger(buckets, charge_point_id)
    if held.boot is None:  # reconnected without booting: its last boot is in the KV entry
        stored = await one_charger(buckets, charge_point_id)
        if stored is not None:
            held.boot = stored.boot
    return held
