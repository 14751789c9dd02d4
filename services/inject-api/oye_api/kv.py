"""The NATS KV buckets the inject-api uses, opened (or created) once at start.

=========================  ===========================  ================================
Bucket                     Key                          Value
=========================  ===========================  ================================
``{P}_users``              user name                    :class:`oye_api.users.UserRecord`
``{P}_config``             ``proxy``                    ``ProxyConfig`` JSON
``{P}_chargers``           ``kv_key(cp)``               ``ChargerState`` JSON (relay)
``{P}_relays``             relay id                     ``RelayState`` JSON (relay), TTL
``{P}_login_failures``     ``kv_key(client address)``   recent failed logins, TTL = window
=========================  ===========================  ================================

Opening is idempotent: an existing bucket is used as it is (whoever created it first, the
relay or another API instance, decided its limits); a missing one is created.
"""

from __future__ import annotations

from dataclasses import dataclass

from nats.aio.client import Client
from nats.js.api import KeyValueConfig
from nats.js.client import JetStreamContext
from nats.js.errors import BadRequestError, BucketNotFoundError, KeyNotFoundError
from nats.js.kv import KeyValue

from oye_shared.state import RELAY_TTL_SECONDS, bucket_name


@dataclass(frozen=True, slots=True)
class Buckets:
    users: KeyValue
    config: KeyValue
    chargers: KeyValue
    relays: KeyValue
    login_failures: KeyValue


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


async def open_buckets(nc: Client, prefix: str, *, login_window: float) -> Buckets:
    js = nc.jetstream()

    def config(name: str, ttl: float | None = None) -> KeyValueConfig:
        return KeyValueConfig(bucket=bucket_name(prefix, name), history=1, ttl=ttl)

    return Buckets(
        users=await open_bucket(js, config("users")),
        config=await open_bucket(js, config("config")),
        chargers=await open_bucket(js, config("chargers")),
        relays=await open_bucket(js, config("relays", RELAY_TTL_SECONDS)),
        login_failures=await open_bucket(js, config("login_failures", login_window)),
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
