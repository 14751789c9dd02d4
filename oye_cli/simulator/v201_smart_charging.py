"""OCPP 2.0.1 smart charging (functional block K) of the simulated station.

SetChargingProfile, ClearChargingProfile, GetChargingProfiles (+ ReportChargingProfiles),
GetCompositeSchedule; the rules are in :mod:`.profile_rules` and :mod:`.smart_charging`.
"""

from __future__ import annotations

from typing import Any

from ocpp.v201 import call, call_result

from oye_cli.simulator.device_model import DeviceModel
from oye_cli.simulator.ocpp_peer import Ocpp201Peer, after, on, utc_iso
from oye_cli.simulator.profile_rules import (
    ProfileLimits,
    install_v201,
    matching_v201,
    report_groups,
)
from oye_cli.simulator.smart_charging import ChargingProfile
from oye_cli.simulator.state import ChargerState, FollowUp


def rejected(reason: str) -> dict[str, str]:
    """A ``statusInfo`` with ``reasonCode`` (snake_case, as ``ocpp`` wants it)."""
    return {"reason_code": reason}


class SmartChargingV201(Ocpp201Peer):
    """The smart-charging handlers; :class:`~.v201.ChargerV201` adds the rest."""

    state: ChargerState
    device_model: DeviceModel
    _follow_up: FollowUp

    async def _call(self, payload: Any) -> Any:
        """Send a CALL; the CALLRESULT as a dataclass, a CALLERROR raised as ``OCPPError``."""
        return await self.call(payload, suppress=False)

    @on("SetChargingProfile")
    def on_set_charging_profile(
        self, evse_id: int, charging_profile: dict[str, Any], **_: Any
    ) -> Any:
        reason = self.install_profile(evse_id, charging_profile)
        if reason is None:
            return call_result.SetChargingProfile("Accepted")
        return call_result.SetChargingProfile("Rejected", status_info=rejected(reason))

    def install_profile(self, evse_id: int, raw: dict[str, Any]) -> str | None:
        """Store a profile per :func:`~.profile_rules.install_v201`; ``None`` or a reasonCode."""
        profile = ChargingProfile.from_v201(evse_id, raw, self.state.now())
        model = self.device_model
        limits = ProfileLimits(
            max_stack_level=int(model.get("SmartChargingCtrlr", "ProfileStackLevel").value),
            max_periods=int(model.get("SmartChargingCtrlr", "PeriodsPerSchedule").value),
            max_installed=int(
                model.get("SmartChargingCtrlr", "Entries", "ChargingProfiles").max_limit or 0
            ),
        )
        return install_v201(self.state, profile, limits)

    @on("ClearChargingProfile")
    def on_clear_charging_profile(
        self,
        charging_profile_id: int | None = None,
        charging_profile_criteria: dict[str, Any] | None = None,
        **_: Any,
    ) -> Any:
        """Remove the profiles matching the id and every criterion given."""
        criteria = charging_profile_criteria or {}
        store = self.state.profiles
        doomed = store.select(
            profile_id=charging_profile_id,
            connector=criteria.get("evse_id"),
            purpose=criteria.get("charging_profile_purpose"),
            stack_level=criteria.get("stack_level"),
        )
        return call_result.ClearChargingProfile("Accepted" if store.remove(doomed) else "Unknown")

    @on("GetChargingProfiles")
    def on_get_charging_profiles(
        self,
        request_id: int,
        charging_profile: dict[str, Any],
        evse_id: int | None = None,
        **_: Any,
    ) -> Any:
        found = matching_v201(self.state, charging_profile, evse_id)
        return call_result.GetChargingProfiles("Accepted" if found else "NoProfiles")

    @after("GetChargingProfiles")
    def after_get_charging_profiles(
        self,
        request_id: int,
        charging_profile: dict[str, Any],
        evse_id: int | None = None,
        **_: Any,
    ) -> None:
        found = matching_v201(self.state, charging_profile, evse_id)
        if found:
            self._follow_up(self._report_profiles(request_id, found))

    async def _report_profiles(self, request_id: int, profiles: list[ChargingProfile]) -> None:
        """One ReportChargingProfiles per purpose and EVSE, ``tbc`` true but on the last."""
        groups = report_groups(profiles)
        for number, (evse, group) in enumerate(groups):
            await self._call(
                call.ReportChargingProfiles(
                    request_id=request_id,
                    charging_limit_source="CSO",
                    charging_profile=[p.raw for p in group],
                    evse_id=evse,
                    tbc=number < len(groups) - 1,
                )
            )

    @on("GetCompositeSchedule")
    def on_get_composite_schedule(
        self, duration: int, evse_id: int, charging_rate_unit: str | None = None, **_: Any
    ) -> Any:
        """Composite per :mod:`~oye_cli.simulator.smart_charging`; unknown EVSE -> Rejected."""
        schedule = self.state.composite(evse_id, duration, charging_rate_unit)
        if schedule is None:
            return call_result.GetCompositeSchedule("Rejected", status_info=rejected("UnknownEVSE"))
        return call_result.GetCompositeSchedule(
            status="Accepted",
            schedule={
                "evse_id": evse_id,
                "duration": duration,
                "schedule_start": utc_iso(schedule.start),
                "charging_rate_unit": schedule.unit,
                "charging_schedule_period": schedule.wire_periods(),
            },
        )
