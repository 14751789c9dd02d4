"""Shared state kept in NATS KV, so any API or relay instance can read it.

=====================  ==================  ============================================
Bucket                 Key                 Value
=====================  ==================  ============================================
``{P}_chargers``       ``kv_key(cp)``      :class:`ChargerState` JSON (written by the
                                           relay that holds the charger)
``{P}_relays``         relay id            :class:`RelayState` JSON, refreshed every
                                           few seconds; entries expire (TTL) when a relay
                                           dies, which marks its chargers OFFLINE
``{P}_config``         ``proxy``           :class:`ProxyConfig` JSON (the original OYE keys)
``{P}_limits``         ``kv_key(cp)``      ``{"maxPower": A}``: the persistent limit the
                                           relay re-applies (:mod:`oye_shared.limits`)
``{P}_users``          user name           argon2id hash and metadata (inject-api only)
=====================  ==================  ============================================

``{P}`` is the subject prefix made safe for bucket names (``oye`` -> ``OYE``).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from oye_shared.backends import Policy, SecondaryBackend

if TYPE_CHECKING:
    from oye_shared.settings import Settings

CONFIG_KEY = "proxy"
RELAY_TTL_SECONDS = 15.0
RELAY_REFRESH_SECONDS = 5.0


def bucket_name(prefix: str, name: str) -> str:
    """A KV bucket name for this deployment, e.g. ``OYE_chargers``."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", prefix).upper() + "_" + name


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class ChargerStatus(StrEnum):
    ONLINE = "ONLINE"
    OFFLINE = "OFFLINE"


OCPP_VERSIONS = {"ocpp1.6": "1.6", "ocpp2.0.1": "2.0.1", "ocpp2.1": "2.1"}


class ChargerState(_Wire):
    charge_point_id: str
    status: ChargerStatus
    relay: str | None = None
    session_id: str | None = None
    subprotocol: str | None = None
    ocpp_version: str | None = None
    remote_address: str | None = None
    connected_since: str | None = None
    last_seen: str | None = None
    upstream: str | None = None  # "up", "down" or "none" (standalone)
    #: Each backend's connection: ``primary`` and every secondary by name -> "up",
    #: "down", "connecting" or "none" (the primary in standalone mode).
    backends: dict[str, str] = Field(default_factory=dict)
    #: From the last BootNotification: vendor, model, serial, firmware.
    boot: dict[str, Any] | None = None
    #: By connector ("evseId/connectorId" on 2.0.1+): status, errorCode, timestamp.
    connectors: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: Open transactions by id: connector, idTag, start time, meterStart.
    transactions: dict[str, dict[str, Any]] = Field(default_factory=dict)


class RelayState(_Wire):
    relay: str
    started: str
    chargers: int = 0


def encode_state(state: ChargerState | RelayState) -> bytes:
    """A state as the KV buckets hold it (and a relay answers an ``Oye-Query``)."""
    return state.model_dump_json(by_alias=True).encode()


class ProxyConfig(_Wire):
    """The original OYE configuration keys (camelCase on the wire)."""

    target_csms_url: str | None = None
    csms_forwarding_enabled: bool = True
    auto_charge_enabled: bool = False
    default_id_tag: str = Field(default="OYE-AUTO", min_length=1, max_length=20)
    #: The primary's policy for its CALLs (default: everything forwarded), see
    #: :mod:`oye_shared.backends`.
    primary_policy: dict[str, Policy] = Field(default_factory=dict)
    #: Named secondary backends (default policy: read-only).
    secondary_backends: list[SecondaryBackend] = Field(default_factory=list)


def seed_config(settings: Settings) -> ProxyConfig:
    """The first configuration, from ``OYE_UPSTREAM_URL``, ``OYE_PRIMARY_POLICY`` and
    ``OYE_SECONDARY_BACKENDS`` (used only while the KV entry does not exist)."""
    return ProxyConfig(
        target_csms_url=settings.upstream_url,
        primary_policy=settings.primary_policy,
        secondary_backends=settings.secondary_backends,
    )
