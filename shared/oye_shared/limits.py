"""Persistent charging limits: the SetChargingProfile / ClearChargingProfile payloads. Pure.

The proxy's own profile uses a reserved id and stack level (``OYE_LIMIT_PROFILE_ID``,
``OYE_LIMIT_STACK_LEVEL``) so that it never replaces a CSMS profile, and clearing it names
that id only. Limits are in A (per phase). 1.6 gets ``connectorId`` + ``csChargingProfiles``
with one schedule object; 2.0.1 and 2.1 get ``evseId`` + ``chargingProfile`` with a list of
schedules, each with an id. Absolute schedules start at the beginning of the current UTC day
(in the past, so there is no gap); session limits are Relative.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from oye_shared.inject import InjectRequest

#: The NATS KV bucket (``{P}_limits``) that holds ``{"maxPower": A}`` by ``kv_key(cp)``.
LIMITS_BUCKET = "limits"


@dataclass(frozen=True, slots=True)
class LimitIds:
    """The reserved profile id and stack level of the proxy's own profiles.

    The persistent limit uses ``profile_id``; the session limits the next two ids
    (TxDefaultProfile, TxProfile), so that one never replaces another.
    """

    profile_id: int
    stack_level: int

    def session_id(self, *, bound: bool) -> int:
        """The id of a session limit: TxProfile when ``bound`` to a transaction."""
        return self.profile_id + (2 if bound else 1)

    @property
    def failsafe_id(self) -> int:
        """The id of the failsafe limit applied while the CSMS is unreachable."""
        return self.profile_id + 3

    @property
    def all_ids(self) -> tuple[int, ...]:
        """The owner's limits (what ``clear`` removes); the failsafe is the relay's own."""
        return (self.profile_id, self.profile_id + 1, self.profile_id + 2)


def _start_of_day(now: datetime | None) -> str:
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT00:00:00Z")


def _limit(value: float) -> float:
    return round(float(value), 1)


def set_profile(
    version: str,
    ids: LimitIds,
    *,
    max_power: float | None = None,
    session_limit: float | None = None,
    transaction_id: str | int | None = None,
    connector: int | None = None,
    failsafe: bool = False,
    now: datetime | None = None,
) -> InjectRequest:
    """The SetChargingProfile for a charger-wide limit (``max_power``) or a session limit.

    ``failsafe``: the session limit that stands in while the CSMS is unreachable (its own
    id, so that it never replaces the owner's session limits).
    """
    if (max_power is None) == (session_limit is None):
        raise ValueError("give exactly one of max_power and session_limit")
    v16 = version == "1.6"
    if max_power is not None:
        purpose = "ChargePointMaxProfile" if v16 else "ChargingStationMaxProfile"
        kind, limit, target = "Absolute", max_power, 0
        profile_id = ids.profile_id
    else:
        assert session_limit is not None
        purpose = "TxDefaultProfile" if transaction_id is None else "TxProfile"
        kind, limit = "Relative", session_limit
        # TxProfile needs a connector / EVSE > 0; TxDefaultProfile on 0 covers them all.
        target = 0 if transaction_id is None else (connector or 1)
        profile_id = (
            ids.failsafe_id if failsafe else ids.session_id(bound=transaction_id is not None)
        )
    schedule: dict[str, Any] = {
        "chargingRateUnit": "A",
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": _limit(limit)}],
    }
    if kind == "Absolute":
        schedule["startSchedule"] = _start_of_day(now)
    profile: dict[str, Any] = {
        "chargingProfileId" if v16 else "id": profile_id,
        "stackLevel": ids.stack_level,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
    }
    if transaction_id is not None:
        profile["transactionId"] = int(transaction_id) if v16 else str(transaction_id)
    if v16:
        profile["chargingSchedule"] = schedule
        payload = {"connectorId": target, "csChargingProfiles": profile}
    else:
        profile["chargingSchedule"] = [{"id": 1, **schedule}]
        payload = {"evseId": target, "chargingProfile": profile}
    return InjectRequest(action="SetChargingProfile", payload=payload)


def clear_profile(version: str, profile_id: int) -> InjectRequest:
    """The ClearChargingProfile that removes one of the proxy's profiles and nothing else."""
    key = "id" if version == "1.6" else "chargingProfileId"
    return InjectRequest(action="ClearChargingProfile", payload={key: profile_id})


def clear_may_remove_ours(version: str, payload: Any, ids: LimitIds) -> bool:
    """Whether a CSMS ClearChargingProfile with ``payload`` could remove the persistent
    (charger-wide maximum) profile of the proxy."""
    if not isinstance(payload, dict):
        return False
    if version == "1.6":
        if "id" in payload:
            return bool(payload["id"] == ids.profile_id)
        return _criteria_match(payload, "connectorId", "ChargePointMaxProfile", ids)
    if "chargingProfileId" in payload:
        return bool(payload["chargingProfileId"] == ids.profile_id)
    criteria = payload.get("chargingProfileCriteria")
    if not isinstance(criteria, dict):
        return True  # no id and no criteria: everything
    return _criteria_match(criteria, "evseId", "ChargingStationMaxProfile", ids)


def _criteria_match(criteria: dict[str, Any], target: str, purpose: str, ids: LimitIds) -> bool:
    return (
        criteria.get(target) in (None, 0)
        and criteria.get("chargingProfilePurpose") in (None, purpose)
        and criteria.get("stackLevel") in (None, ids.stack_level)
    )


def stored_max_power(value: bytes | None) -> float | None:
    """The ``maxPower`` of a stored limit entry, or None."""
    if not value:
        return None
    try:
        data = json.loads(value)
    except ValueError:
        return None
    found = data.get("maxPower") if isinstance(data, dict) else None
    return float(found) if isinstance(found, int | float) and not isinstance(found, bool) else None


def stored_value(max_power: float) -> bytes:
    return json.dumps({"maxPower": max_power}).encode()
