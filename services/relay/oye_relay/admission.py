"""Reading a charger's handshake request: its id and the subprotocols it offers (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

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
