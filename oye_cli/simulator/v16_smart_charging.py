"""OCPP 1.6 smart charging (the SmartCharging feature profile) of the simulated charger.

SetChargingProfile, ClearChargingProfile, GetCompositeSchedule; the rules are in
:mod:`.profile_rules` and :mod:`.smart_charging`. (1.6 has no GetChargingProfiles.)
"""

from __future__ import annotations

from typing import Any

from ocpp.v16 import call_result

from oye_cli.simulator.configuration import ConfigKey
from oye_cli.simulator.ocpp_peer import Ocpp16Peer, on, utc_iso
from oye_cli.simulator.profile_rules import ProfileLimits, install_v16
from oye_cli.simulator.smart_charging import ChargingProfile
from oye_cli.simulator.state import ChargerState


class SmartChargingV16(Ocpp16Peer):
    """The smart-charging handlers; :class:`~.v16.ChargerV16` adds the rest."""

    state: ChargerState
    config: dict[str, ConfigKey]

    async def _call(self, payload: Any) -> Any:
        """Send a CALL; the CALLRESULT as a dataclass, a CALLERROR raised as ``OCPPError``."""
        return await self.call(payload, suppress=False)

    @on("SetChargingProfile")
    def on_set_charging_profile(
        self, connector_id: int, cs_charging_profiles: dict[str, Any], **_: Any
    ) -> Any:
        return call_result.SetChargingProfile(
            self.install_profile(connector_id, cs_charging_profiles)
        )

    def install_profile(self, connector_id: int, raw: dict[str, Any]) -> str:
        """Store a profile per :func:`~.profile_rules.install_v16`; the status to answer."""
        profile = ChargingProfile.from_v16(connector_id, raw, self.state.now())
        limits = ProfileLimits(
            max_stack_level=self._int("ChargeProfileMaxStackLevel"),
            max_periods=self._int("ChargingScheduleMaxPeriods"),
            max_installed=self._int("MaxChargingProfilesInstalled"),
        )
        return install_v16(self.state, profile, limits)

    @on("ClearChargingProfile")
    def on_clear_charging_profile(
        self,
        id: int | None = None,
        connector_id: int | None = None,
        charging_profile_purpose: str | None = None,
        stack_level: int | None = None,
        **_: Any,
    ) -> Any:
        """Remove the profiles matching every field given (``{}`` clears all)."""
        store = self.state.profiles
        doomed = store.select(
            profile_id=id,
            connector=connector_id,
            purpose=charging_profile_purpose,
            stack_level=stack_level,
        )
        return call_result.ClearChargingProfile("Accepted" if store.remove(doomed) else "Unknown")

    @on("GetCompositeSchedule")
    def on_get_composite_schedule(
        self, connector_id: int, duration: int, charging_rate_unit: str | None = None, **_: Any
    ) -> Any:
        """Composite per :mod:`~oye_cli.simulator.smart_charging`; unknown connector -> Rejected."""
        schedule = self.state.composite(connector_id, duration, charging_rate_unit)
        if schedule is None:
            return call_result.GetCompositeSchedule("Rejected")
        start = utc_iso(schedule.start)
        return call_result.GetCompositeSchedule(
            status="Accepted",
            connector_id=connector_id,
            schedule_start=start,
            charging_schedule={
                "duration": duration,
                "start_schedule": start,
                "charging_rate_unit": schedule.unit,
                "charging_schedule_period": schedule.wire_periods(),
            },
        )

    def _int(self, key: str) -> int:
        return int(self.config[key].value)
