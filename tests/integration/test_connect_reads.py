"""What every connect reads (the offline backlog, the 1.6 transaction map, the stored
limit) comes from memory, and is exact: whatever any instance wrote before the read
began is in the answer. A storm of connects asks NATS about once per round trip."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.kv import KeyValue

from oye_cli.nats_server import NatsServer
from oye_cli.simulator import SimulatedCharger
from oye_relay.replay_index import ReplayIndex
from oye_relay.server import Relay
from oye_shared.kv import bucket_config, bucket_stream, open_bucket
from oye_shared.kv_mirror import BucketMirror
from oye_shared.limits import LIMITS_BUCKET, stored_value
from oye_shared.replay import replay_stream_config
from oye_shared.settings import Settings
from oye_shared.stream_tail import StreamTail
from oye_shared.subjects import Subjects, kv_key
from tests.peers.csms import CsmsServer
from tests.support.relay import eventually, relay_running, watching

pytestmark = pytest.mark.integration

#: JetStream API requests that read one message or key: what a connect must not need.
PER_KEY_READS = ("$JS.API.DIRECT.GET.", "$JS.API.STREAM.MSG.GET.")


def per_key_reads(requests: list[Msg]) -> list[str]:
    return [m.subject for m in requests if m.subject.startswith(PER_KEY_READS)]


@pytest.fixture
async def writer(nats_server: NatsServer) -> AsyncIterator[Client]:
    """Another instance's connection: its writes reach ours only through NATS."""
    client = await nats.connect(nats_server.url)
    yield client
    await client.close()


@pytest.fixture
async def mirror(nc: Client) -> AsyncIterator[BucketMirror]:
    js = nc.jetstream()
    kv = await open_bucket(js, bucket_config("t", "exact"))
    mirror = BucketMirror(kv, "exact", StreamTail(js, bucket_stream("t", "exact")))
    follower = asyncio.create_task(mirror.follow())
    await eventually(lambda: mirror.loaded)
    yield mirror
    follower.cancel()
    await asyncio.gather(follower, return_exceptions=True)


@pytest.fixture
async def index(nc: Client) -> AsyncIterator[ReplayIndex]:
    js = nc.jetstream()
    config = replay_stream_config("t")
    await js.add_stream(config)
    assert config.name is not None
    index = ReplayIndex(js, config.name, Subjects("t").all_replay)
    follower = asyncio.create_task(index.follow())
    await eventually(lambda: index.loaded)
    yield index
    follower.cancel()
    await asyncio.gather(follower, return_exceptions=True)


async def test_readers_waiting_together_share_one_question(nc: Client) -> None:
    js = nc.jetstream()
    await js.add_stream(name="TAIL", subjects=["tail.>"])
    tail = StreamTail(js, "TAIL")
    async with watching(nc, "$JS.API.STREAM.INFO.TAIL") as asked:
        ack = await js.publish("tail.a", b"1")
        answers = await asyncio.gather(*(tail.last_sequence() for _ in range(50)))
        assert answers == [ack.seq] * 50
        await nc.flush()  # our own requests come back to our subscription before the PONG
        assert len(asked.messages) == 1

        # A reader never gets an answer older than itself.
        ack = await js.publish("tail.b", b"2")
        assert await tail.last_sequence() == ack.seq


async def test_a_mirror_with_its_tail_has_every_write_made_before_the_read(
    mirror: BucketMirror, writer: Client
) -> None:
    theirs = await open_bucket(writer.jetstream(), bucket_config("t", "exact"))
    for n in range(30):
        await theirs.put("key", b"%d" % n)  # acknowledged: it happened before the read
        entry = await mirror.get("key")
        assert entry is not None
        assert entry.value == b"%d" % n
    await theirs.delete("key")
    assert await mirror.get("key") is None


async def test_a_mirror_that_has_caught_up_reads_no_key_from_nats(
    nc: Client, mirror: BucketMirror
) -> None:
    revision = await mirror.kv.put("key", b"v")
    await eventually(lambda: mirror.seen >= revision)
    async with watching(nc, "$JS.API.>") as requests:
        for _ in range(20):
            assert (entry := await mirror.get("key")) is not None
            assert entry.value == b"v"
        assert await mirror.get("missing") is None
        await nc.flush()
    assert not per_key_reads(requests.messages)
    assert requests.messages  # the tail was asked instead


async def test_the_index_knows_an_empty_queue_without_asking_and_sees_every_append(
    nc: Client, index: ReplayIndex, writer: Client
) -> None:
    subject = Subjects("t").replay("CP-1")
    async with watching(nc, "$JS.API.>") as requests:
        assert await index.surely_empty(subject)
        await nc.flush()
    assert not per_key_reads(requests.messages)

    await writer.jetstream().publish(subject, b"[2,...]")  # another relay's append
    assert not await index.surely_empty(subject)  # at once: the tail said it is there
    assert await index.surely_empty(Subjects("t").replay("CP-2"))


async def test_a_queue_found_empty_is_forgotten_unless_an_append_came_meanwhile(
    index: ReplayIndex,
) -> None:
    subject = Subjects("t").replay("CP-1")
    index.appended(subject)
    asked_at = index.mark(subject)
    index.appended(subject)  # arrived while NATS was being asked
    index.found_empty(subject, asked_at)
    assert index.may_hold(subject)
    index.found_empty(subject, index.mark(subject))
    assert not index.may_hold(subject)


def the_relay(settings: Settings) -> Relay:
    """The running relay's object (an earlier test's may still be in memory)."""
    gc.unfreeze()  # the relay froze what existed when it started, itself too (main.py)
    (relay,) = [
        thing
        for thing in gc.get_objects()
        if type(thing) is Relay and thing.settings.ocpp_port == settings.ocpp_port
    ]
    return relay


async def test_chargers_connect_and_boot_without_a_nats_read_of_their_own(
    settings: Settings, nc: Client
) -> None:
    """The backlog, the transaction map and the stored limit come from the relay's
    memory; the stored limit is still there, applied after the boot."""
    limits: KeyValue = await open_bucket(
        nc.jetstream(), bucket_config(settings.subject_prefix, LIMITS_BUCKET)
    )
    await limits.put(kv_key("CP-LIMITED"), stored_value(10.0))
    async with (
        CsmsServer() as csms,
        relay_running(settings.model_copy(update={"upstream_url": csms.url})) as running,
    ):
        relay = the_relay(settings)

        def in_memory() -> bool:
            store, limits = relay.replay_store, relay.limits
            return (
                store is not None
                and limits is not None
                and store.index.loaded
                and store.txmap_mirror.loaded
                and limits.loaded
            )

        await eventually(in_memory)
        async with watching(nc, "$JS.API.>") as requests:
            for cp in ("CP-A", "CP-B", "CP-LIMITED"):
                async with SimulatedCharger(running.url(cp), cp) as charger:
                    await charger.boot()
                    if cp == "CP-LIMITED":
                        async with asyncio.timeout(10):
                            await charger.frames.wait_for(
                                lambda f: f.action == "SetChargingProfile", direction="received"
                            )
            await nc.flush()
        assert not per_key_reads(requests.messages)


async def test_a_charger_connecting_while_nats_is_down_is_relayed(
    settings: Settings, nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    """NATS gone, the connect's reads of the offline queue and the transaction map fail:
    the relay says so and relays the charger all the same (admission without
    credentials here: checking them needs NATS too)."""
    settings = settings.model_copy(update={"charger_auth": "none"})
    async with (
        CsmsServer() as csms,
        relay_running(settings.model_copy(update={"upstream_url": csms.url})) as running,
    ):
        relay = the_relay(settings)
        await eventually(lambda: relay.replay_store is not None and relay.replay_store.index.loaded)
        nats_server.kill()
        with caplog.at_level(logging.WARNING, logger="oye_relay.server"):
            async with SimulatedCharger(running.url("CP-DOWN"), "CP-DOWN") as charger:
                await charger.boot()
        nats_server.start()
    assert "'CP-DOWN': cannot read the offline replay queue now" in caplog.text
