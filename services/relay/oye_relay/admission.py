"""Reading a charger's handshake request: its id, its subprotocols, and whether it may
connect at all (pure; the relay brings the stored credentials and checks the password)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Literal
from urllib.parse import unquote

from oye_shared.charger_auth import ChargerCredential

OCPP_PATH_PREFIX = "/ocpp/"
SUPPORTED_SUBPROTOCOLS = ("ocpp1.6", "ocpp2.0.1", "ocpp2.1")

_FORBIDDEN_IN_ID = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a handshake request is refused, as an HTTP status and a one-line reason."""

    status: int
    reason: str


def charge_point_id_from_path(path: str, *, max_length: int) -> str | Refusal:
    """The charge point id of ``/ocpp/{id}``: the raw segment, percent-decoded once."""
    path = path.split("?", 1)[0]
    if not path.startswith(OCPP_PATH_PREFIX):
        return Refusal(404, "chargers connect to /ocpp/{chargePointId}")
    raw = path[len(OCPP_PATH_PREFIX) :]
    if "/" in raw:
        return Refusal(404, "chargers connect to /ocpp/{chargePointId} (one path segment)")
    try:
        charge_point_id = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        return Refusal(400, "charge point id is not valid UTF-8 once percent-decoded")
    if not charge_point_id:
        return Refusal(400, "charge point id is empty")
    if len(charge_point_id) > max_length:
        return Refusal(400, f"charge point id is longer than {max_length} characters")
    if _FORBIDDEN_IN_ID.search(charge_point_id):
        return Refusal(400, "charge point id contains control characters")
    if charge_point_id != charge_point_id.strip():
        return Refusal(400, "charge point id starts or ends with whitespace")
    return charge_point_id


def offered_subprotocols(header_values: list[str]) -> list[str]:
    """The subprotocols a client offers, in its order (one or several headers, comma-joined)."""
    return [token.strip() for value in header_values for token in value.split(",") if token.strip()]


def choose_standalone_subprotocol(offered: list[str]) -> str | None:
    """Without a CSMS to ask, take the charger's first offer that we speak."""
    return next((token for token in offered if token in SUPPORTED_SUBPROTOCOLS), None)


# Who may connect (OYE_CHARGER_AUTH, OYE_UNKNOWN_CHARGERS).

AuthMode = Literal["forward", "local", "both", "none"]


def auth_mode(setting: str, *, has_upstream: bool) -> AuthMode:
    """``auto`` is ``forward`` with a CSMS (it decides, as without the proxy), else ``local``."""
    if setting == "auto":
        return "forward" if has_upstream else "local"
    assert setting in ("forward", "local", "both", "none"), setting
    return setting  # type: ignore[return-value]


class Admission(Enum):
    ADMIT = "admit"
    PENDING = "pending"  # held, answered Pending, until the owner approves it


def needs_password_check(mode: AuthMode, credential: ChargerCredential | None) -> bool:
    return (
        mode in ("local", "both")
        and credential is not None
        and credential.approved
        and credential.password_hash is not None
    )


def admit(
    mode: AuthMode,
    unknown_chargers: str,
    credential: ChargerCredential | None,
    *,
    password_ok: bool,
) -> Admission | Refusal:
    """Whether a charger may connect, given its stored credential and whether the password
    it presented matched (only asked when :func:`needs_password_check`)."""
    if mode == "none":
        return Admission.ADMIT
    if credential is not None and credential.revoked and unknown_chargers != "pending":
        return Refusal(403, "this charger's access was revoked")
    if credential is None or not credential.approved:
        if unknown_chargers == "reject":
            return Refusal(403, "this charger is not approved")
        if unknown_chargers == "pending":
            return Admission.PENDING
        return Admission.ADMIT
    if needs_password_check(mode, credential) and not password_ok:
        return Refusal(401, "wrong or missing credentials")
    return Admission.ADMIT


def forwards_authorization(mode: AuthMode) -> bool:
    """In ``local`` mode the proxy is the authenticator: the CSMS never sees the password."""
    return mode != "local"
