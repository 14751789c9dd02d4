"""The 2.0.1 device model of the simulated charger: components, variables, their values.

A small but realistic slice (the variables a CSMS or the proxy touches). Only the
``Actual`` attribute exists; ``WriteOnly`` variables (the Basic Auth password) are
Rejected on read and reported without value, as OCPP 2.0.1 B07 and the security profile
rules say.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Key = tuple[str, str, str | None]  # component name, variable name, variable instance


@dataclass
class Variable:
    """One variable's ``Actual`` value and how it may be used."""

    value: str
    mutability: str = "ReadWrite"  # ReadOnly, ReadWrite, WriteOnly
    data_type: str = "string"  # string, integer, boolean, MemberList, OptionList
    max_limit: float | None = None

    def accepts(self, value: str) -> bool:
        if self.data_type == "integer":
            return value.lstrip("-").isdigit() and int(value) >= 0
        if self.data_type == "boolean":
            return value in ("true", "false")
        return len(value) <= 1000


def default_variables(charge_point_id: str) -> dict[Key, Variable]:
    """The device model of a typical 2.0.1 station with smart charging."""
    ro, rw = "ReadOnly", "ReadWrite"
    return {
        ("OCPPCommCtrlr", "HeartbeatInterval", None): Variable("300", rw, "integer"),
        ("OCPPCommCtrlr", "WebSocketPingInterval", None): Variable("30", rw, "integer"),
        ("OCPPCommCtrlr", "MessageTimeout", "Default"): Variable("30", ro, "integer"),
        ("SampledDataCtrlr", "TxUpdatedInterval", None): Variable("60", rw, "integer"),
        ("SampledDataCtrlr", "TxUpdatedMeasurands", None): Variable(
            "Energy.Active.Import.Register", rw, "MemberList"
        ),
        ("SmartChargingCtrlr", "Available", None): Variable("true", ro, "boolean"),
        ("SmartChargingCtrlr", "Enabled", None): Variable("true", rw, "boolean"),
        ("SmartChargingCtrlr", "ProfileStackLevel", None): Variable("8", ro, "integer"),
        ("SmartChargingCtrlr", "RateUnit", None): Variable("A,W", ro, "MemberList"),
        ("SmartChargingCtrlr", "PeriodsPerSchedule", None): Variable("24", ro, "integer"),
        ("SmartChargingCtrlr", "Entries", "ChargingProfiles"): Variable(
            "0", ro, "integer", max_limit=16
        ),
        ("SmartChargingCtrlr", "Phases3to1", None): Variable("false", ro, "boolean"),
        ("AuthCtrlr", "AuthorizeRemoteStart", None): Variable("false", rw, "boolean"),
        ("TxCtrlr", "TxStartPoint", None): Variable("PowerPathClosed", rw, "MemberList"),
        ("TxCtrlr", "TxStopPoint", None): Variable("EVConnected,Authorized", rw, "MemberList"),
        ("TxCtrlr", "EVConnectionTimeOut", None): Variable("120", rw, "integer"),
        ("DeviceDataCtrlr", "ItemsPerMessage", "GetVariables"): Variable("32", ro, "integer"),
        ("DeviceDataCtrlr", "ItemsPerMessage", "GetReport"): Variable("8", ro, "integer"),
        ("SecurityCtrlr", "SecurityProfile", None): Variable("1", ro, "integer"),
        ("SecurityCtrlr", "Identity", None): Variable(charge_point_id, ro),
        ("SecurityCtrlr", "BasicAuthPassword", None): Variable("", "WriteOnly"),
        ("ChargingStation", "AvailabilityState", None): Variable("Available", ro, "OptionList"),
    }


class DeviceModel:
    """Variables by (component, variable, instance), with GetVariables/SetVariables rules."""

    def __init__(self, variables: dict[Key, Variable]) -> None:
        self.variables = variables
        self._components = {key[0] for key in variables}

    def get(self, component: str, variable: str, instance: str | None = None) -> Variable:
        return self.variables[(component, variable, instance)]

    def _lookup(self, item: Mapping[str, Any]) -> tuple[str, Variable | None]:
        component = item["component"]["name"]
        key = (component, item["variable"]["name"], item["variable"].get("instance"))
        if component not in self._components:
            return "UnknownComponent", None
        if key not in self.variables:
            return "UnknownVariable", None
        if item.get("attribute_type", "Actual") != "Actual":
            return "NotSupportedAttributeType", None
        return "Accepted", self.variables[key]

    def read(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """One ``GetVariableResult`` for one ``GetVariableData`` (snake_case keys)."""
        status, found = self._lookup(item)
        if found is not None and found.mutability == "WriteOnly":
            status, found = "Rejected", None
        result = _echo(item) | {"attribute_status": status}
        if found is not None:
            result["attribute_value"] = found.value
        return result

    def write(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """Apply one ``SetVariableData``; its ``SetVariableResult``."""
        status, found = self._lookup(item)
        if found is not None:
            value = item["attribute_value"]
            if found.mutability == "ReadOnly" or not found.accepts(value):
                status = "Rejected"
            else:
                found.value = value
        return _echo(item) | {"attribute_status": status}

    def report(self, base: str) -> list[dict[str, Any]]:
        """``ReportData`` items for a GetBaseReport of ``base``."""
        items = []
        for (component, name, instance), variable in self.variables.items():
            if base == "ConfigurationInventory" and variable.mutability == "ReadOnly":
                continue
            if base == "SummaryInventory" and component != "ChargingStation":
                continue
            attribute: dict[str, Any] = {"type": "Actual", "mutability": variable.mutability}
            if variable.mutability != "WriteOnly":
                attribute["value"] = variable.value
            characteristics: dict[str, Any] = {
                "data_type": variable.data_type,
                "supports_monitoring": False,
            }
            if variable.max_limit is not None:
                characteristics["max_limit"] = variable.max_limit
            items.append(
                {
                    "component": {"name": component},
                    "variable": {"name": name} | ({"instance": instance} if instance else {}),
                    "variable_attribute": [attribute],
                    "variable_characteristics": characteristics,
                }
            )
        return items


def _echo(item: Mapping[str, Any]) -> dict[str, Any]:
    """The component, variable and attribute type of a request item, as results repeat them."""
    echoed = {"component": item["component"], "variable": item["variable"]}
    if "attribute_type" in item:
        echoed["attribute_type"] = item["attribute_type"]
    return echoed
