"""oye_relay.fleet: chargers' states in NATS KV, written off the forwarding path."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from oye_relay.fleet import BATCH, FleetState
from oye_shared.kv import open_state_buckets
from oye_shared.state import ChargerState, ChargerStatus
from oye_shared.subjects import kv_key
from tests.support.relay import eventually

pytestmark = pytest.mark.integration

PREFIX = "t"


@pytest.fixture
async def fleet(nc: Client) -> AsyncIterator[FleetState]:
    fleet = FleetState("relay-a", PREFIX, lambda: 0)
    writer = asyncio.create_task(fleet.run(nc))
    yield fleet
    writer.cancel()
    await asyncio.gather(writer, return_exceptions=True)


@pytest.fixture
async def chargers(nc: Client) -> KeyValue:
    _, chargers, _ = await open_state_buckets(nc, PREFIX)
    return chargers


def online(cp: str, session: str) -> ChargerState:
    return ChargerState(
        charge_point_id=cp, status=ChargerStatus.ONLINE, relay="relay-a", session_id=session
    )


async def statuses(chargers: KeyValue, ids: list[str]) -> dict[str, str] | None:
    found = {}
    for cp in ids:
        try:
            entry = await chargers.get(kv_key(cp))
        except KeyNotFoundError:  # not written yet
            return None
        assert entry.value is not None
        found[cp] = ChargerState.model_validate_json(entry.value).status.value
    return found


async def test_chargers_gone_at_once_are_all_written_offline_but_one_that_moved_on(
    fleet: FleetState, chargers: KeyValue
) -> None:
    """More than a batch leave together (a network cut); one of them has meanwhile
    connected again (its entry names a newer session) and stays ONLINE."""
    ids = [f"CP-{n}" for n in range(BATCH * 2 + 5)]
    for cp in ids:
        fleet.changed(online(cp, "old"))
    await eventually(lambda: statuses(chargers, ids))
    newer = online("CP-0", "new").model_dump_json(by_alias=True)
    await chargers.put(kv_key("CP-0"), newer.encode())
    for cp in ids:
        fleet.gone(online(cp, "old"))

    async def all_written() -> dict[str, str] | None:
        found = await statuses(chargers, ids)
        return found if found and list(found.values()).count("OFFLINE") == len(ids) - 1 else None

    found = await eventually(all_written)
    assert found["CP-0"] == "ONLINE"
