"""Secondary backends and command policies (pure: models and decisions, no I/O).

One charger has one *primary* backend (the CSMS at ``targetCsmsUrl``) and any number of
named *secondary* backends (an energy manager, a second CSMS). Every backend receives
what the charger sends; only the primary's answers reach the charger. A CALL a backend
sends to the charger first meets that backend's **policy** for its action:

``forward``
    the call goes to the charger (through the one lane of calls towards it);
``answer``
    the proxy answers it itself, with the configured payload or a schema-valid default,
    and the charger never sees it;
``reject``
    the proxy answers with a CALLERROR ``SecurityError`` naming the policy.

A policy key is an action (``RemoteStartTransaction``) or, for the commands that several
backends could fight over, an action and what it concerns:
``SetChargingProfile:TxDefaultProfile`` (the profile's purpose),
``ChangeConfiguration:HeartbeatInterval`` (the 1.6 key),
``SetVariables:OCPPCommCtrlr.HeartbeatInterval`` (component ``.`` variable). The most
specific key wins, then the action, then the default: ``forward`` for the primary, and
**read-only** for secondaries (:data:`READ_ONLY_ACTIONS` forwarded, everything else
answered by the proxy).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

PRIMARY = "primary"

#: Actions that only read, forwarded by default from a secondary backend.
READ_ONLY_ACTIONS = frozenset(
    {
        "GetConfiguration",
        "GetVariables",
        "GetCompositeSchedule",
        "TriggerMessage",
        "GetChargingProfiles",
        "GetLocalListVersion",
        "GetBaseReport",
        "GetReport",
        "GetMonitoringReport",
        "GetDiagnostics",
        "GetLog",
        "GetInstalledCertificateIds",
        "GetDisplayMessages",
        "GetTransactionStatus",
        "GetTariffs",
        "GetPeriodicEventStream",
        "GetDERControl",
    }
)

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_WEBSOCKET_URL = re.compile(r"^wss?://[^/\s]+\S*$")


class Policy(StrEnum):
    FORWARD = "forward"
    ANSWER = "answer"
    REJECT = "reject"


class BackendAuth(StrEnum):
    #: The charger's own ``Authorization`` header, as it sent it to the proxy.
    FORWARD = "forward"
    #: HTTP Basic with this backend's own ``username`` (default: the charge point id)
    #: and ``password``.
    BASIC = "basic"
    NONE = "none"


class _Wire(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class SecondaryBackend(_Wire):
    """A named backend that sees everything the charger says and commands within its policy."""

    name: str
    url: str
    auth: BackendAuth = BackendAuth.NONE
    username: str | None = None
    password: str | None = None
    #: The charge point ids it applies to; null (the default): every charger.
    chargers: list[str] | None = None
    #: Policy key -> forward / answer / reject; see the module docstring.
    policy: dict[str, Policy] = Field(default_factory=dict)
    #: Action -> the payload the proxy answers with (default: a schema-valid one).
    answers: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name_token(cls, value: str) -> str:
        if not _NAME.match(value) or value == PRIMARY:
            raise ValueError(
                "must be 1-32 letters, digits, '_' or '-', and not 'primary' (the CSMS's name)"
            )
        return value

    @field_validator("url")
    @classmethod
    def _websocket_url(cls, value: str) -> str:
        if not _WEBSOCKET_URL.match(value):
            raise ValueError("must be a ws:// or wss:// URL")
        return value

    @model_validator(mode="after")
    def _basic_has_password(self) -> SecondaryBackend:
        if self.auth is BackendAuth.BASIC and not self.password:
            raise ValueError("auth 'basic' needs a password")
        return self

    def applies_to(self, charge_point_id: str) -> bool:
        return self.chargers is None or charge_point_id in self.chargers


def policy_keys(action: str, payload: Any) -> list[str]:
    """The specific policy keys a CALL concerns (empty: only its action)."""
    if not isinstance(payload, Mapping):
        return []
    if action == "SetChargingProfile":
        profile = payload.get("csChargingProfiles") or payload.get("chargingProfile") or {}
        purpose = profile.get("chargingProfilePurpose") if isinstance(profile, Mapping) else None
        return [f"{action}:{purpose}"] if isinstance(purpose, str) else []
    if action == "ChangeConfiguration":
        key = payload.get("key")
        return [f"{action}:{key}"] if isinstance(key, str) else []
    if action == "SetVariables":
        keys = []
        for item in payload.get("setVariableData") or []:
            if isinstance(item, Mapping):
                keys.append(f"{action}:{_variable_key(item)}")
        return keys
    return []


def _variable_key(item: Mapping[str, Any]) -> str:
    component = item.get("component") or {}
    variable = item.get("variable") or {}
    return f"{component.get('name', '')}.{variable.get('name', '')}"


def resolve(
    policy: Mapping[str, Policy], action: str, key: str | None, *, secondary: bool
) -> Policy:
    """The policy for one action (and one specific key, if any)."""
    if key is not None and key in policy:
        return policy[key]
    if action in policy:
        return policy[action]
    if not secondary or action in READ_ONLY_ACTIONS:
        return Policy.FORWARD
    return Policy.ANSWER


def decide(policy: Mapping[str, Policy], action: str, payload: Any, *, secondary: bool) -> Policy:
    """What to do with a backend's CALL: a call about several keys is forwarded only when
    every key is; otherwise it is rejected if any key is, else answered."""
    keys: list[str | None] = [*policy_keys(action, payload)] or [None]
    verdicts = {resolve(policy, action, key, secondary=secondary) for key in keys}
    if verdicts == {Policy.FORWARD}:
        return Policy.FORWARD
    return Policy.REJECT if Policy.REJECT in verdicts else Policy.ANSWER


def names(backends: Iterable[SecondaryBackend]) -> list[str]:
    return [backend.name for backend in backends]
