"""Which charging profiles a charger takes (SetChargingProfile) and reports. Pure.

1.6 (§5.16, §3.13): a profile with the same id, or the same purpose and stackLevel, is
replaced — the 1.6 text does not scope that rule by connector, and neither does this
charger. ChargePointMaxProfile only on connector 0; TxProfile only on a connector with a
running transaction (and, if it names one, that transaction); the answer is a bare
``Rejected``.

2.0.1 (K01): the same id replaces; another id with the same purpose, stackLevel and EVSE
whose validity overlaps is refused as ``DuplicateProfile``; TxProfile must name the
running transaction (K01.FR.03); ChargingStationExternalConstraints is not the CSMS's to
set. Refusals carry a ``reasonCode``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from oye_cli.simulator.smart_charging import MAX_PURPOSES, TX, TX_DEFAULT, ChargingProfile
from oye_cli.simulator.state import ChargerState

_REPORT_ORDER = ["ChargingStationMaxProfile", TX_DEFAULT, TX]


@dataclass(frozen=True)
class ProfileLimits:
    """The charger's smart-charging limits, as its configuration advertises them."""

    max_stack_level: int
    max_periods: int
    max_installed: int


def _common_refusal(
    state: ChargerState, profile: ChargingProfile, limits: ProfileLimits
) -> str | None:
    if profile.connector != 0 and state.connector(profile.connector) is None:
        return "UnknownEVSE"
    if profile.stack_level > limits.max_stack_level:
        return "InvalidStackLevel"
    if len(profile.periods) > limits.max_periods:
        return "InvalidSchedule"
    if profile.purpose in MAX_PURPOSES and profile.connector != 0:
        return "InvalidProfile"
    return None


def _running_transaction_id(state: ChargerState, profile: ChargingProfile) -> str | None:
    connector = state.connector(profile.connector)
    return connector.transaction.id if connector and connector.transaction else None


def install_v16(state: ChargerState, profile: ChargingProfile, limits: ProfileLimits) -> str:
    """Store a 1.6 profile if acceptable; the SetChargingProfile status.

    An accepted TxProfile is bound to the connector's running transaction.
    """
    if _common_refusal(state, profile, limits):
        return "Rejected"
    if profile.purpose == TX:
        running = _running_transaction_id(state, profile)
        if running is None or profile.transaction_id not in (None, running):
            return "Rejected"
        profile.transaction_id = running
    store = state.profiles
    same_slot = store.select(purpose=profile.purpose, stack_level=profile.stack_level)
    replaced = {p.id for p in same_slot} | {p.id for p in store.select(profile_id=profile.id)}
    if len(store.profiles) - len(replaced) >= limits.max_installed:
        return "Rejected"
    store.install(profile, same_slot=same_slot)
    return "Accepted"


def install_v201(
    state: ChargerState, profile: ChargingProfile, limits: ProfileLimits
) -> str | None:
    """Store a 2.0.1 profile if acceptable; ``None``, or the Rejected ``reasonCode``."""
    refusal = _common_refusal(state, profile, limits)
    if refusal:
        return refusal
    if profile.purpose == "ChargingStationExternalConstraints":
        return "InvalidProfile"
    if profile.purpose == TX:
        running = _running_transaction_id(state, profile)
        if running is None or profile.transaction_id != running:
            return "TxNotFound"
    store = state.profiles
    slot = store.select(
        connector=profile.connector, purpose=profile.purpose, stack_level=profile.stack_level
    )
    if any(p.id != profile.id and _overlap(p, profile) for p in slot):
        return "DuplicateProfile"
    if len(store.profiles) - len(store.select(profile_id=profile.id)) >= limits.max_installed:
        return "NoSpace"
    store.install(profile, same_slot=[])
    return None


def matching_v201(
    state: ChargerState, criterion: Mapping[str, Any], evse_id: int | None
) -> list[ChargingProfile]:
    """The profiles a 2.0.1 GetChargingProfiles asks for (snake_case criterion)."""
    sources = criterion.get("charging_limit_source")
    if sources is not None and "CSO" not in sources:
        return []  # every profile here was set by the CSMS (source CSO)
    ids = criterion.get("charging_profile_id")
    return [
        p
        for p in state.profiles.select(
            connector=evse_id,
            purpose=criterion.get("charging_profile_purpose"),
            stack_level=criterion.get("stack_level"),
        )
        if ids is None or p.id in ids
    ]


def report_groups(profiles: Iterable[ChargingProfile]) -> list[tuple[int, list[ChargingProfile]]]:
    """Profiles grouped per purpose and EVSE, as (evse, profiles), Max first, Tx last."""
    groups: dict[tuple[str, int], list[ChargingProfile]] = {}
    for profile in sorted(profiles, key=_report_order):
        groups.setdefault((profile.purpose, profile.connector), []).append(profile)
    return [(evse, group) for (_, evse), group in groups.items()]


def _report_order(profile: ChargingProfile) -> tuple[int, int, int]:
    purpose = profile.purpose
    rank = _REPORT_ORDER.index(purpose) if purpose in _REPORT_ORDER else len(_REPORT_ORDER)
    return rank, profile.connector, profile.stack_level


def _overlap(first: ChargingProfile, second: ChargingProfile) -> bool:
    """Whether two validity windows overlap (absent bounds are open)."""
    starts_before_end = (
        first.valid_from is None or second.valid_to is None or first.valid_from < second.valid_to
    )
    ends_after_start = (
        first.valid_to is None or second.valid_from is None or second.valid_from < first.valid_to
    )
    return starts_before_end and ends_after_start
