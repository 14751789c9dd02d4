"""Which backend owns which exclusive command, and the conflicts a configuration has (pure).

Some commands must have one owner per charger, or two backends fight over the charger:
starting a transaction (1.6 RemoteStartTransaction, 2.x RequestStartTransaction), a
charging profile of one purpose (SetChargingProfile), and one configuration key
(ChangeConfiguration, SetVariables). A backend *owns* such a command when its policy
forwards it (the primary forwards everything it is not told otherwise). A configuration
where two backends that share a charger own the same command is refused, naming it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from oye_shared.backends import PRIMARY, Policy, SecondaryBackend, resolve

#: Every charging profile purpose of 1.6, 2.0.1 and 2.1.
PROFILE_PURPOSES = (
    "ChargePointMaxProfile",
    "ChargingStationMaxProfile",
    "TxDefaultProfile",
    "TxProfile",
    "ChargingStationExternalConstraints",
    "PriorityCharging",
    "LocalGeneration",
)
START_ACTIONS = ("RemoteStartTransaction", "RequestStartTransaction")
KEYED_ACTIONS = ("ChangeConfiguration", "SetVariables")


@dataclass(frozen=True, slots=True)
class Owner:
    """A backend as the ownership check sees it."""

    name: str
    policy: Mapping[str, Policy]
    secondary: bool
    chargers: frozenset[str] | None  # None: every charger

    def shares_a_charger_with(self, other: Owner) -> bool:
        if self.chargers is None:
            return other.chargers is None or bool(other.chargers)
        if other.chargers is None:
            return bool(self.chargers)
        return bool(self.chargers & other.chargers)


def owners(
    primary_policy: Mapping[str, Policy], secondaries: Sequence[SecondaryBackend]
) -> list[Owner]:
    found = [Owner(PRIMARY, primary_policy, False, None)]
    for backend in secondaries:
        chargers = frozenset(backend.chargers) if backend.chargers is not None else None
        found.append(Owner(backend.name, backend.policy, True, chargers))
    return found


def _commands(backends: Sequence[Owner]) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """(command as people say it, [(action, policy key)] that amount to it)."""
    commands: list[tuple[str, list[tuple[str, str | None]]]] = [
        ("RemoteStartTransaction/RequestStartTransaction", [(a, None) for a in START_ACTIONS])
    ]
    for purpose in PROFILE_PURPOSES:
        key = f"SetChargingProfile:{purpose}"
        commands.append((f"SetChargingProfile of purpose {purpose}", [("SetChargingProfile", key)]))
    for action in KEYED_ACTIONS:
        named = sorted(
            {k for b in backends for k in b.policy if k.startswith(action + ":")},
        )
        for key in named:
            commands.append((f"{action} of {key.partition(':')[2]!r}", [(action, key)]))
        commands.append((f"{action} of any other key", [(action, None)]))
    return commands


def _owns(backend: Owner, ways: list[tuple[str, str | None]]) -> bool:
    return any(
        resolve(backend.policy, action, key, secondary=backend.secondary) is Policy.FORWARD
        for action, key in ways
    )


def conflicts(
    primary_policy: Mapping[str, Policy], secondaries: Sequence[SecondaryBackend]
) -> list[str]:
    """Every exclusive command two backends would own, as sentences; [] when none."""
    backends = owners(primary_policy, secondaries)
    problems = []
    duplicates = sorted({b.name for b in backends if [c.name for c in backends].count(b.name) > 1})
    for name in duplicates:
        problems.append(f"two backends are named {name!r}")
    for command, ways in _commands(backends):
        holding = [b for b in backends if _owns(b, ways)]
        for i, first in enumerate(holding):
            for second in holding[i + 1 :]:
                if first.shares_a_charger_with(second):
                    problems.append(
                        f"{command} is owned by both {first.name!r} and {second.name!r}: "
                        "set it to answer or reject for one of them"
                    )
    return problems
