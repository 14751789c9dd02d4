"""BucketMirror: a KV bucket read from memory, current with every instance's writes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client
from nats.js.kv import KeyValue

from oye_shared.kv import bucket_config, open_bucket
from oye_shared.kv_mirror import BucketMirror
from tests.support.relay import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def kv(nc: Client) -> KeyValue:
    return await open_bucket(nc.jetstream(), bucket_config("t", "mirror"))


@pytest.fixture
async def mirror(kv: KeyValue) -> AsyncIterator[BucketMirror]:
    await kv.put("before", b"1")
    mirror = BucketMirror(kv, "mirror")
    follower = asyncio.create_task(mirror.follow())
    await eventually(lambda: mirror.loaded)
    yield mirror
    follower.cancel()
    await asyncio.gather(follower, return_exceptions=True)


async def test_it_loads_the_bucket_and_follows_other_writers(
    kv: KeyValue, mirror: BucketMirror
) -> None:
    entry = await mirror.get("before")
    assert entry is not None
    assert entry.value == b"1"
    revision = await kv.put("later", b"2")  # another instance's write
    await eventually(lambda: mirror.revision("later") == revision)
    assert (later := await mirror.get("later")) is not None
    assert later.value == b"2"
    await kv.delete("before")
    await eventually(lambda: mirror.revision("before") > 1)
    assert await mirror.get("before") is None


async def test_a_writer_reads_its_own_write_at_once_and_older_news_never_win(
    kv: KeyValue, mirror: BucketMirror
) -> None:
    revision = await kv.put("own", b"new")
    mirror.note("own", b"new", revision)
    assert (own := await mirror.get("own")) is not None
    assert own.value == b"new"
    mirror.note("own", b"old", revision - 1)  # a watcher update overtaken by our write
    assert (own := await mirror.get("own")) is not None
    assert own.value == b"new"


async def test_without_its_watcher_it_reads_the_bucket_itself(kv: KeyValue) -> None:
    mirror = BucketMirror(kv, "mirror")  # never followed
    revision = await kv.put("key", b"value")
    entry = await mirror.get("key")
    assert entry is not None
    assert (entry.value, entry.revision) == (b"value", revision)
    assert await mirror.get("missing") is None
