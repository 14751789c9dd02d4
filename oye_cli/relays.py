"""Several relay processes on one box: what each one gets (``OYE_RELAY_PROCESSES``).

They share the chargers' port through SO_REUSEPORT (the kernel spreads new connections
over them), so each process needs everything else of its own: a relay id (the default,
``<hostname>-<pid>``, already differs; an explicit ``OYE_RELAY_ID`` gets ``-1``, ``-2``,
...) and a metrics port (``OYE_METRICS_PORT``, the next ones for the others, stepping over
the other ports of the stack). Pure: ``oye up`` and the benchmark harness both use it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from oye_shared.settings import env_name

RELAY_ID = env_name("relay_id")
METRICS_PORT = env_name("metrics_port")
REUSE_PORT = env_name("ocpp_reuse_port")
MAX_PORT = 65535


class RelayPortsError(ValueError):
    """No room for the relays' metrics ports above ``OYE_METRICS_PORT``."""


@dataclass(frozen=True, slots=True)
class RelayProcess:
    """One relay process: its name in logs, its environment, its metrics port."""

    name: str
    env: dict[str, str]
    metrics_port: int


def metrics_ports(first: int, count: int, *, taken: Collection[int] = ()) -> list[int]:
    """``count`` ports from ``first`` up, skipping ``taken`` (0: any free port, for each)."""
    if first == 0:
        return [0] * count
    ports: list[int] = []
    port = first
    while len(ports) < count:
        if port > MAX_PORT:
            raise RelayPortsError(
                f"{METRICS_PORT}={first}: no room above it for {count} relays' metrics ports"
            )
        if port not in taken:
            ports.append(port)
        port += 1
    return ports


def relay_processes(
    env: Mapping[str, str], *, count: int, metrics_port: int, taken: Collection[int] = ()
) -> list[RelayProcess]:
    """The relay processes to start from ``env`` (the stack's environment).

    One process runs with ``env`` as it is (its listener not shared unless
    ``OYE_OCPP_REUSE_PORT`` says so). Several open the port with SO_REUSEPORT, which only
    they ask for: a relay started by mistake on that port still fails to bind.
    """
    if count == 1:
        return [RelayProcess("relay", dict(env), metrics_port)]
    explicit_id = env.get(RELAY_ID)
    found = []
    for index, port in enumerate(metrics_ports(metrics_port, count, taken=taken), start=1):
        own = {**env, REUSE_PORT: "true", METRICS_PORT: str(port)}
        if explicit_id:
            own[RELAY_ID] = f"{explicit_id}-{index}"
        found.append(RelayProcess(f"relay-{index}", own, port))
    return found
