"""NATS KV helpers every service uses: open-or-create a bucket, read a key or a bucket.

Opening is idempotent: an existing bucket is used as it is (whoever created it first
decided its limits); a missing one is created. The buckets and what they hold are listed
in :mod:`oye_shared.state`.
"""

from __future__ import annotations

from nats.aio.client import Client
from nats.js.api import KeyValueConfig
from nats.js.client import JetStreamContext
from nats.js.errors import BadRequestError, BucketNotFoundError, KeyNotFoundError
from nats.js.kv import KeyValue

from oye_shared.state import RELAY_TTL_SECONDS, bucket_name


async def open_bucket(js: JetStreamContext, config: KeyValueConfig) -> KeyValue:
    """Open a bucket, creating it if it does not exist yet."""
    try:
        return await js.key_value(config.bucket)
    except BucketNotFoundError:
        pass
    try:
        return await js.create_key_value(config)
    except BadRequestError:
        # Created meanwhile by another instance, with other limits: use it as it is.
        return await js.key_value(config.bucket)


def bucket_config(prefix: str, name: str, ttl: float | None = None) -> KeyValueConfig:
    return KeyValueConfig(bucket=bucket_name(prefix, name), history=1, ttl=ttl)


def bucket_stream(prefix: str, name: str) -> str:
    """The JetStream stream that holds a bucket (NATS names it so)."""
    return f"KV_{bucket_name(prefix, name)}"


async def open_state_buckets(nc: Client, prefix: str) -> tuple[KeyValue, KeyValue, KeyValue]:
    """The buckets relays and APIs share: (config, chargers, relays)."""
    js = nc.jetstream()
    return (
        await open_bucket(js, bucket_config(prefix, "config")),
        await open_bucket(js, bucket_config(prefix, "chargers")),
        await open_bucket(js, bucket_config(prefix, "relays", RELAY_TTL_SECONDS)),
    )


async def get_entry(kv: KeyValue, key: str) -> KeyValue.Entry | None:
    """The current entry of a key, or None if it is missing or deleted."""
    try:
        return await kv.get(key)
    except KeyNotFoundError:  # also raised for a deleted key
        return None


async def read_all(kv: KeyValue) -> dict[str, bytes]:
    """Every live key of a bucket with its value, read through one watcher."""
    watcher = await kv.watchall(ignore_deletes=True)
    values: dict[str, bytes] = {}
    try:
        async for entry in watcher:
            if entry is None:  # the initial values are all delivered
                break
            if entry.value is not None:
                values[entry.key] = entry.value
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]
    return values
