"""Charging profiles as a charger stores them, and the composite schedule it reports. Pure.

One model serves 1.6 and 2.0.1: ``connector`` is the 1.6 ``connectorId`` or the 2.0.1
``evseId`` (0 = the whole charger). The version modules decide what to accept; this module
stores, clears, selects and composes.

Composite schedule (1.6 §3.13.3, 2.0.1 K08), evaluated at every instant of the window:

* per purpose, the *leading* profile is the valid one with the highest ``stackLevel``
  whose schedule covers the instant (a finished schedule hands over to a lower level);
* the charging limit is TxProfile if one leads on the connector, else TxDefaultProfile
  (one on the connector overrides one on connector 0) — TxProfile overrules, it is not
  min-ed with TxDefault;
* the result is the minimum of that, ChargePointMax/ChargingStationMax (connector 0) and
  the charger's own hardware maximum. For connector 0 only the Max and connector-0
  TxDefault profiles count.
* With no profile at all the answer is **Accepted with the hardware maximum** (e.g. 32 A,
  one period): that is what a real charger delivers, while ``Rejected`` would claim the
  request itself was wrong.
* Relative schedules start at the running transaction's start, or "now" when none runs
  (2.0.1: computed as if a transaction started). Absolute schedules without
  ``startSchedule`` start when the profile was installed (the spec leaves it open).

Units: ``A`` is per phase, ``W`` is total; converting uses 230 V and the period's phases
(3 when absent). Converted values are rounded down to 0.1 A / 1 W; unconverted limits are
reported exactly as given (``Decimal`` throughout, no float noise).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from oye_cli.simulator.ocpp_peer import parse_time

MAX_PURPOSES = frozenset({"ChargePointMaxProfile", "ChargingStationMaxProfile"})
TX_DEFAULT = "TxDefaultProfile"
TX = "TxProfile"
NOMINAL_VOLTAGE = Decimal(230)
DEFAULT_PHASES = 3
_RECURRENCE = {"Daily": timedelta(days=1), "Weekly": timedelta(weeks=1)}


def to_decimal(value: Any) -> Decimal:
    """A limit as an exact ``Decimal`` (floats go through their shortest repr)."""
    return value if isinstance(value, Decimal) else Decimal(str(value))


@dataclass(frozen=True)
class Period:
    """One schedule period: from ``start`` seconds, at most ``limit`` in the schedule's unit."""

    start: int
    limit: Decimal
    phases: int | None = None


@dataclass
class ChargingProfile:
    """A stored profile, normalized; ``raw`` keeps the payload as received (snake_case)."""

    id: int
    stack_level: int
    purpose: str
    kind: str
    connector: int
    unit: str
    periods: list[Period]
    installed_at: datetime
    raw: dict[str, Any]
    start_schedule: datetime | None = None
    duration: int | None = None
    recurrency: str | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    transaction_id: str | None = None

    @classmethod
    def from_payload(
        cls,
        connector: int,
        raw: Mapping[str, Any],
        installed_at: datetime,
        *,
        profile_id: int,
        schedule: Mapping[str, Any],
    ) -> ChargingProfile:
        periods = [
            Period(
                int(item["start_period"]),
                to_decimal(item["limit"]),
                item.get("number_phases"),
            )
            for item in schedule["charging_schedule_period"]
        ]
        transaction_id = raw.get("transaction_id")
        return cls(
            id=profile_id,
            stack_level=int(raw["stack_level"]),
            purpose=raw["charging_profile_purpose"],
            kind=raw["charging_profile_kind"],
            connector=connector,
            unit=schedule["charging_rate_unit"],
            periods=sorted(periods, key=lambda period: period.start),
            installed_at=installed_at,
            raw=dict(raw),
            start_schedule=parse_time(schedule.get("start_schedule")),
            duration=schedule.get("duration"),
            recurrency=raw.get("recurrency_kind"),
            valid_from=parse_time(raw.get("valid_from")),
            valid_to=parse_time(raw.get("valid_to")),
            transaction_id=None if transaction_id is None else str(transaction_id),
        )

    @classmethod
    def from_v16(
        cls, connector: int, raw: Mapping[str, Any], installed_at: datetime
    ) -> ChargingProfile:
        """From a 1.6 ``csChargingProfiles`` / ``chargingProfile`` (snake_case keys)."""
        return cls.from_payload(
            connector,
            raw,
            installed_at,
            profile_id=int(raw["charging_profile_id"]),
            schedule=raw["charging_schedule"],
        )

    @classmethod
    def from_v201(
        cls, evse: int, raw: Mapping[str, Any], installed_at: datetime
    ) -> ChargingProfile:
        """From a 2.0.1 ``chargingProfile``; the first schedule is the one used (K01.FR.34)."""
        return cls.from_payload(
            evse, raw, installed_at, profile_id=int(raw["id"]), schedule=raw["charging_schedule"][0]
        )

    def origin(self, moment: datetime, transaction_start: datetime) -> datetime:
        """When the schedule's period 0 starts, for the cycle that contains ``moment``."""
        if self.kind == "Relative":
            return transaction_start
        base = self.start_schedule or self.installed_at
        if self.kind == "Recurring":
            cycle = _RECURRENCE.get(self.recurrency or "Daily", _RECURRENCE["Daily"])
            return base + cycle * ((moment - base) // cycle)
        return base

    def is_valid(self, moment: datetime) -> bool:
        return (self.valid_from is None or self.valid_from <= moment) and (
            self.valid_to is None or moment < self.valid_to
        )

    def period_at(self, moment: datetime, transaction_start: datetime) -> Period | None:
        """The period in force at ``moment``, or ``None`` if the profile does not cover it."""
        if not self.is_valid(moment):
            return None
        offset = (moment - self.origin(moment, transaction_start)).total_seconds()
        if offset < 0 or (self.duration is not None and offset >= self.duration):
            return None
        current = None
        for period in self.periods:
            if period.start <= offset:
                current = period
        return current

    def changes(self, start: datetime, end: datetime, transaction_start: datetime) -> set[datetime]:
        """Instants in ``(start, end)`` where this profile's limit may change."""
        moments = {m for m in (self.valid_from, self.valid_to) if m is not None}
        origin = self.origin(start, transaction_start)
        cycle = _RECURRENCE.get(self.recurrency or "Daily") if self.kind == "Recurring" else None
        while origin < end:
            moments.update(origin + timedelta(seconds=p.start) for p in self.periods)
            if self.duration is not None:
                moments.add(origin + timedelta(seconds=self.duration))
            if cycle is None:
                break
            origin += cycle
        return {m for m in moments if start < m < end}


@dataclass(frozen=True)
class CompositeSchedule:
    """The composite answer: periods relative to ``start``."""

    start: datetime
    duration: int
    unit: str
    periods: list[Period]

    def wire_periods(self) -> list[dict[str, Any]]:
        """``chargingSchedulePeriod`` items (snake_case), limits as ``float``.

        ``float``, not ``Decimal``: ``ocpp`` 2.1.0 writes a ``Decimal`` with one decimal
        and cannot validate one; the float of an exact ``Decimal`` keeps its digits.
        """
        return [
            {"start_period": p.start, "limit": float(p.limit), "number_phases": p.phases}
            for p in self.periods
        ]


def convert(limit: Decimal, from_unit: str, to_unit: str, phases: int) -> Decimal:
    """Convert between ``A`` (per phase) and ``W`` (total); rounded down when converted."""
    if from_unit == to_unit:
        return limit
    if to_unit == "A":
        amps = limit / (NOMINAL_VOLTAGE * phases)
        return amps.quantize(Decimal("0.1"), rounding=ROUND_FLOOR)
    return (limit * NOMINAL_VOLTAGE * phases).quantize(Decimal(1), rounding=ROUND_FLOOR)


@dataclass
class ProfileStore:
    """The profiles a charger holds."""

    profiles: list[ChargingProfile] = field(default_factory=list)

    def install(self, profile: ChargingProfile, *, same_slot: Iterable[ChargingProfile]) -> None:
        """Store ``profile``, replacing the one with its id and those in ``same_slot``."""
        replaced = {id(p) for p in same_slot}
        self.profiles = [p for p in self.profiles if p.id != profile.id and id(p) not in replaced]
        self.profiles.append(profile)

    def select(
        self,
        *,
        profile_id: int | None = None,
        connector: int | None = None,
        purpose: str | None = None,
        stack_level: int | None = None,
        transaction_id: str | None = None,
    ) -> list[ChargingProfile]:
        """The profiles that match every criterion given."""
        return [
            p
            for p in self.profiles
            if profile_id in (None, p.id)
            and connector in (None, p.connector)
            and purpose in (None, p.purpose)
            and stack_level in (None, p.stack_level)
            and transaction_id in (None, p.transaction_id)
        ]

    def remove(self, doomed: Iterable[ChargingProfile]) -> int:
        """Remove the given profiles; how many there were."""
        ids = {id(p) for p in doomed}
        before = len(self.profiles)
        self.profiles = [p for p in self.profiles if id(p) not in ids]
        return before - len(self.profiles)

    def composite(
        self,
        connector: int,
        start: datetime,
        duration: int,
        unit: str,
        *,
        transaction_start: datetime | None,
        hardware_max_amps: Decimal,
    ) -> CompositeSchedule:
        """The composite schedule for ``connector`` over ``duration`` seconds from ``start``."""
        tx_start = transaction_start or start
        end = start + timedelta(seconds=duration)
        relevant = [p for p in self.profiles if p.connector in (0, connector)]
        moments = {start}
        for profile in relevant:
            moments |= profile.changes(start, end, tx_start)
        periods: list[Period] = []
        for moment in sorted(moments):
            limit, phases = self._limit_at(moment, connector, unit, tx_start, hardware_max_amps)
            if periods and (periods[-1].limit, periods[-1].phases) == (limit, phases):
                continue
            periods.append(Period(int((moment - start).total_seconds()), limit, phases))
        return CompositeSchedule(start, duration, unit, periods)

    def _leading(
        self, candidates: Iterable[ChargingProfile], moment: datetime, tx_start: datetime
    ) -> tuple[ChargingProfile, Period] | None:
        best: tuple[ChargingProfile, Period] | None = None
        for profile in candidates:
            period = profile.period_at(moment, tx_start)
            if period is not None and (best is None or profile.stack_level > best[0].stack_level):
                best = (profile, period)
        return best

    def _limit_at(
        self,
        moment: datetime,
        connector: int,
        unit: str,
        tx_start: datetime,
        hardware_max_amps: Decimal,
    ) -> tuple[Decimal, int]:
        def leading(purposes: frozenset[str], on: int) -> tuple[ChargingProfile, Period] | None:
            chosen = (p for p in self.profiles if p.purpose in purposes and p.connector == on)
            return self._leading(chosen, moment, tx_start)

        station_max = leading(MAX_PURPOSES, 0)
        if connector == 0:
            charging = leading(frozenset({TX_DEFAULT}), 0)
        else:
            charging = (
                leading(frozenset({TX}), connector)
                or leading(frozenset({TX_DEFAULT}), connector)
                or leading(frozenset({TX_DEFAULT}), 0)
            )
        phases = DEFAULT_PHASES
        for found in (station_max, charging):
            if found is not None and found[1].phases is not None:
                phases = found[1].phases
        limit = convert(hardware_max_amps, "A", unit, phases)
        for found in (station_max, charging):
            if found is not None:
                profile, period = found
                limit = min(limit, convert(period.limit, profile.unit, unit, phases))
        return limit, phases
