"""Configuration from environment variables, read once at each service's edge.

Every variable is ``OYE_<FIELD>`` except ``NATS_URL``. :func:`load_settings` turns a bad
value into :class:`SettingsError`, whose message names the variable.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from oye_shared.backends import Policy, SecondaryBackend
from oye_shared.ownership import conflicts

Port = Annotated[int, Field(ge=1, le=65535)]


class SettingsError(ValueError):
    """A configuration value is missing or wrong; the message names the variable."""


def _default_relay_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="OYE_", extra="ignore", frozen=True, populate_by_name=True
    )

    # Where things listen.
    bind_host: str = "0.0.0.0"
    ocpp_port: Port = 9000
    http_port: Port = 8080
    #: Prometheus metrics and health checks of the relay and of the logger (0: any free port).
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = 9100
    logger_metrics_port: Annotated[int, Field(ge=0, le=65535)] = 9101
    #: wss:// for chargers (security profile 2); a client CA also requires charger
    #: certificates (profile 3). Re-read when the files change.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None

    # The CSMS; unset means standalone.
    upstream_url: str | None = None
    upstream_tls_verify: bool = True
    upstream_ca_file: Path | None = None
    upstream_connect_timeout: Annotated[float, Field(gt=0)] = 5.0
    upstream_backoff_max: Annotated[float, Field(gt=0)] = 30.0
    #: While the CSMS is unreachable: "answer" in its place, or "close" the charger's
    #: socket so the charger runs its own offline logic (an OCPP 2.0.1 local controller).
    offline_mode: Literal["answer", "close"] = "answer"
    #: Comma-separated id tags / tokens accepted while the CSMS is unreachable.
    offline_id_tags: str = ""
    #: Amps per phase for every session while the CSMS is unreachable (unset: none).
    failsafe_limit: Annotated[float, Field(gt=0)] | None = None
    #: How often a replayed message the CSMS rejects is sent again before it is set aside.
    replay_attempts: Annotated[int, Field(ge=1, le=100)] = 3
    #: Secondary backends as JSON (seeds ``secondaryBackends``), and the primary's policy.
    secondary_backends: list[SecondaryBackend] = Field(default_factory=list)
    primary_policy: dict[str, Policy] = Field(default_factory=dict)

    # NATS.
    nats_url: str | None = Field(
        default=None, validation_alias=AliasChoices("NATS_URL", "OYE_NATS_URL")
    )
    nats_port: Port = 4222
    subject_prefix: str = "oye"
    stream_max_age: Annotated[float, Field(gt=0)] = 7 * 24 * 3600.0
    stream_max_bytes: Annotated[int, Field(gt=0)] = 1024**3
    publish_buffer: Annotated[int, Field(gt=0)] = 100_000

    # Who may connect as a charger (see oye_shared.charger_auth).
    #: "auto": "forward" with a CSMS (it decides, as without the proxy), "local" without.
    charger_auth: Literal["auto", "forward", "local", "both", "none"] = "auto"
    #: A charger id the owner never approved: "accept" it, hold it "pending" approval,
    #: or "reject" it (only approved chargers connect).
    unknown_chargers: Literal["accept", "pending", "reject"] = "accept"
    #: Mask RFID id tags / tokens in frames published for monitoring (peers get them as sent).
    mask_id_tags: bool = False

    # Limits on what one peer may cost the others.
    #: Per port: chargers, and API and metrics clients (see oye_shared.http_guard).
    max_connections_per_address: Annotated[int, Field(ge=1)] = 100
    #: A charger's WebSocket handshake; an HTTP client's first request head.
    handshake_timeout: Annotated[float, Field(gt=0)] = 10.0
    #: CALLs per second one charger may send, on average (a burst may reach twice as many).
    charger_call_rate: Annotated[float, Field(gt=0)] = 20.0
    #: A charger still over its rate after this many seconds is disconnected (1008).
    flood_disconnect_after: Annotated[float, Field(gt=0)] = 10.0
    max_http_body_bytes: Annotated[int, Field(ge=1024)] = 1024 * 1024

    # The relay.
    relay_id: str = Field(default_factory=_default_relay_id)
    #: Relay processes ``oye up`` starts, sharing ``ocpp_port`` (SO_REUSEPORT): one box
    #: uses as many cores as it has relays (oye_cli.relays).
    relay_processes: Annotated[int, Field(ge=1, le=256)] = 1
    #: Open the chargers' port with SO_REUSEPORT, so other relay processes of this user on
    #: this box may listen on it too (the kernel spreads connections over them). Off by
    #: default: a relay started by mistake on a taken port fails instead of sharing it.
    ocpp_reuse_port: bool = False
    max_id_length: Annotated[int, Field(ge=1, le=1000)] = 128
    max_frame_bytes: Annotated[int, Field(ge=1024)] = 8 * 1024 * 1024
    ping_interval: Annotated[float, Field(gt=0)] = 20.0
    ping_timeout: Annotated[float, Field(gt=0)] = 20.0

    # Injection and the API.
    inject_timeout: Annotated[float, Field(gt=0)] = 30.0
    admin_password: str | None = None
    #: The reserved charging profile id and stack level of the proxy's persistent limits.
    limit_profile_id: Annotated[int, Field(ge=1)] = 9_000_001
    limit_stack_level: Annotated[int, Field(ge=0)] = 8

    # Storage.
    data_dir: Path = Path("./data")
    db_url: str | None = None
    log_retention_count: Annotated[int, Field(ge=0)] | None = None
    log_retention_days: Annotated[float, Field(gt=0)] | None = None

    log_level: str = "INFO"
    #: uvloop when installed (auto), or asyncio's own loop: oye_shared.event_loop.
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"

    @field_validator("upstream_url")
    @classmethod
    def _upstream_is_websocket(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if not re.match(r"^wss?://[^/\s]+", value):
            raise ValueError("must be a ws:// or wss:// URL")
        return value

    @field_validator("upstream_ca_file", "tls_cert", "tls_key", "tls_client_ca")
    @classmethod
    def _file_readable(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("OYE_TLS_CERT and OYE_TLS_KEY must be set together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("OYE_TLS_CLIENT_CA needs OYE_TLS_CERT and OYE_TLS_KEY")
        return self

    @model_validator(mode="after")
    def _one_owner_per_command(self) -> Settings:
        problems = conflicts(self.primary_policy, self.secondary_backends)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @field_validator("nats_url")
    @classmethod
    def _nats_url_scheme(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        for url in value.split(","):
            if not re.match(r"^(nats|tls|ws|wss)://\S+$", url.strip()):
                raise ValueError("must be nats://host:port (comma-separated for a cluster)")
        return value

    @field_validator("subject_prefix")
    @classmethod
    def _prefix_is_subject(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*", value):
            raise ValueError("must be dot-separated tokens of letters, digits, '_' or '-'")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return value.upper()

    @property
    def offline_id_tag_set(self) -> frozenset[str]:
        return frozenset(tag.strip() for tag in self.offline_id_tags.split(",") if tag.strip())

    @property
    def stream_name(self) -> str:
        """The JetStream stream that captures frames and events."""
        return re.sub(r"[^A-Za-z0-9_-]", "_", self.subject_prefix).upper() + "_TRAFFIC"

    @property
    def nats_servers(self) -> list[str]:
        url = self.nats_url or f"nats://127.0.0.1:{self.nats_port}"
        return [part.strip() for part in url.split(",")]


def env_name(field: str) -> str:
    """The environment variable that sets a field."""
    if field in ("nats_url", "NATS_URL"):
        return "NATS_URL"
    return field if field.startswith("OYE_") else f"OYE_{field.upper()}"


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment (and overrides), naming the variable on error."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            problems.append(f"{env_name(field)}: {error['msg']} (got {error.get('input')!r})")
        raise SettingsError("bad configuration: " + "; ".join(problems)) from None
