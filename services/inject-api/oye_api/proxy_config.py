"""The proxy configuration (the original OYE keys), kept in NATS KV under ``proxy``.

Which wins: the KV entry, once it exists. ``OYE_UPSTREAM_URL`` only *seeds* it: the first
API instance that starts with an empty config bucket writes ``targetCsmsUrl`` from it
(null if unset) and the defaults for the other keys. After that, changing the variable
does nothing; change the config with ``POST /api/config`` instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import ConfigDict, Field, Strict, ValidationError, field_validator

from oye_api.kv import get_entry
from oye_shared.backends import Policy
from oye_shared.ownership import conflicts
from oye_shared.state import CONFIG_KEY, ProxyConfig

MAX_WRITE_ATTEMPTS = 20


class ConfigConflictError(RuntimeError):
    """Other writers won every compare-and-set attempt."""


class ConfigRefusedError(ValueError):
    """The merged configuration lets two backends own the same exclusive command."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("configuration refused: " + "; ".join(problems))
        self.problems = problems


_WEBSOCKET_URL = re.compile(r"^wss?://[^/\s]+\S*$")


class ConfigUpdate(ProxyConfig):
    """A partial update: only the keys present in the request body change."""

    model_config = ConfigDict(extra="forbid", strict=True)

    #: Policies arrive as JSON strings ("forward", ...), which strict mode would refuse.
    primary_policy: dict[str, Annotated[Policy, Strict(False)]] = Field(default_factory=dict)

    @field_validator("target_csms_url")
    @classmethod
    def _websocket_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if not _WEBSOCKET_URL.match(value):
            raise ValueError("must be a ws:// or wss:// URL, or null for standalone")
        return value

    def changes(self) -> dict[str, Any]:
        """The fields the request set, by field name."""
        return {name: getattr(self, name) for name in self.model_fields_set}


#: What the API shows instead of a secondary backend's password; sent back unchanged in a
#: POST, it keeps the stored password (so a GET, edit, POST round trip loses nothing).
HIDDEN_PASSWORD = "********"


def shown(config: ProxyConfig) -> ProxyConfig:
    """The configuration as the API shows it: secondary backends' passwords hidden."""
    if not any(backend.password for backend in config.secondary_backends):
        return config
    hidden = [
        backend.model_copy(update={"password": HIDDEN_PASSWORD}) if backend.password else backend
        for backend in config.secondary_backends
    ]
    return config.model_copy(update={"secondary_backends": hidden})


def _keep_hidden_passwords(changes: Mapping[str, Any], current: ProxyConfig) -> dict[str, Any]:
    backends = changes.get("secondary_backends")
    if not backends:
        return dict(changes)
    stored = {backend.name: backend.password for backend in current.secondary_backends}
    kept = [
        backend.model_copy(update={"password": stored.get(backend.name)})
        if backend.password == HIDDEN_PASSWORD
        else backend
        for backend in backends
    ]
    return {**changes, "secondary_backends": kept}


class ConfigStore:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def _read(self) -> tuple[ProxyConfig, int | None]:
        entry = await get_entry(self._kv, CONFIG_KEY)
        if entry is None or entry.value is None:
            return ProxyConfig(), None
        try:
            return ProxyConfig.model_validate_json(entry.value), entry.revision
        except ValidationError:
            # Unreadable (written by hand?): show defaults; the next update replaces it.
            return ProxyConfig(), entry.revision

    async def get(self) -> ProxyConfig:
        config, _ = await self._read()
        return config

    async def seed(self, seeded: ProxyConfig) -> bool:
        """Write the first config from the environment; False if one exists already."""
        try:
            await self._kv.create(CONFIG_KEY, seeded.model_dump_json(by_alias=True).encode())
        except KeyWrongLastSequenceError:
            return False
        return True

    async def update(self, changes: Mapping[str, Any]) -> ProxyConfig:
        """Merge changes into the stored config (compare-and-set, retried on conflict)."""
        for _ in range(MAX_WRITE_ATTEMPTS):
            current, revision = await self._read()
            merged = current.model_copy(update=_keep_hidden_passwords(changes, current))
            problems = conflicts(merged.primary_policy, merged.secondary_backends)
            if problems:
                raise ConfigRefusedError(problems)
            data = merged.model_dump_json(by_alias=True).encode()
            try:
                if revision is None:
                    await self._kv.create(CONFIG_KEY, data)
                else:
                    await self._kv.update(CONFIG_KEY, data, last=revision)
            except KeyWrongLastSequenceError:
                continue  # another instance wrote first: merge into its version
            return merged
        raise ConfigConflictError("the config kept changing during the update; try again")
