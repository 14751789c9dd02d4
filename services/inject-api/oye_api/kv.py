"""The NATS KV buckets the inject-api uses, opened (or created) once at start.

=========================  ===========================  ================================
Bucket                     Key                          Value
=========================  ===========================  ================================
``{P}_users``              user name                    :class:`oye_api.users.UserRecord`
``{P}_config``             ``proxy``                    ``ProxyConfig`` JSON
``{P}_chargers``           ``kv_key(cp)``               ``ChargerState`` JSON (relay)
``{P}_relays``             relay id                     ``RelayState`` JSON (relay), TTL
``{P}_login_failures``     ``kv_key(client address)``   recent failed logins, TTL = window
``{P}_limits``             ``kv_key(cp)``               ``{"maxPower": A}``, the persistent
                                                        limit the relay re-applies
``{P}_charger_auth``       ``kv_key(cp)``               ``ChargerCredential`` JSON: approval
                                                        and argon2id password hash (relay
                                                        reads, writes pending chargers)
=========================  ===========================  ================================
"""

from __future__ import annotations

from dataclasses import dataclass

from nats.aio.client import Client
from nats.js.kv import KeyValue

from oye_shared.charger_auth import CHARGER_AUTH_BUCKET
from oye_shared.kv import bucket_config, get_entry, open_bucket, open_state_buckets, read_all
from oye_shared.limits import LIMITS_BUCKET


@dataclass(frozen=True, slots=True)
class Buckets:
    users: KeyValue
    config: KeyValue
    chargers: KeyValue
    relays: KeyValue
    login_failures: KeyValue
    limits: KeyValue
    charger_auth: KeyValue


async def open_buckets(nc: Client, prefix: str, *, login_window: float) -> Buckets:
    js = nc.jetstream()
    config, chargers, relays = await open_state_buckets(nc, prefix)
    return Buckets(
        users=await open_bucket(js, bucket_config(prefix, "users")),
        config=config,
        chargers=chargers,
        relays=relays,
        login_failures=await open_bucket(js, bucket_config(prefix, "login_failures", login_window)),
        limits=await open_bucket(js, bucket_config(prefix, LIMITS_BUCKET)),
        charger_auth=await open_bucket(js, bucket_config(prefix, CHARGER_AUTH_BUCKET)),
    )


__all__ = ["Buckets", "get_entry", "open_buckets", "read_all"]
