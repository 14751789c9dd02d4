"""What each of several relay processes gets (oye_cli.relays, oye up's plan): the port
shared only when several are asked for, an id each, a metrics port each."""

from __future__ import annotations

import pytest

from oye_cli.relays import RelayPortsError, metrics_ports, relay_processes
from oye_cli.supervisor import StartupError, plan_relays
from oye_shared.settings import SettingsError, load_settings

pytestmark = pytest.mark.unit


def test_one_relay_runs_with_the_environment_as_it_is() -> None:
    """OYE_RELAY_PROCESSES=1: nothing added, so the port is not shared by accident."""
    env = {"OYE_RELAY_ID": "edge", "OYE_METRICS_PORT": "9100"}
    [relay] = relay_processes(env, count=1, metrics_port=9100)
    assert (relay.name, relay.env, relay.metrics_port) == ("relay", env, 9100)


def test_several_relays_share_the_port_with_an_id_and_a_metrics_port_each() -> None:
    """An explicit OYE_RELAY_ID gets -1, -2, ...; SO_REUSEPORT is asked for each."""
    relays = relay_processes({"OYE_RELAY_ID": "edge", "X": "y"}, count=3, metrics_port=9200)
    assert [r.name for r in relays] == ["relay-1", "relay-2", "relay-3"]
    assert [r.env["OYE_RELAY_ID"] for r in relays] == ["edge-1", "edge-2", "edge-3"]
    assert [r.env["OYE_METRICS_PORT"] for r in relays] == ["9200", "9201", "9202"]
    assert all(r.env["OYE_OCPP_REUSE_PORT"] == "true" and r.env["X"] == "y" for r in relays)


def test_without_an_explicit_id_each_relay_keeps_the_default_one() -> None:
    """Unset, OYE_RELAY_ID stays unset: each process names itself <hostname>-<pid>."""
    relays = relay_processes({}, count=2, metrics_port=0)
    assert all("OYE_RELAY_ID" not in r.env for r in relays)
    assert [r.metrics_port for r in relays] == [0, 0]


def test_metrics_ports_step_over_the_ports_the_stack_takes() -> None:
    """9100, then 9102 past the logger's 9101; 0 means any free port for each."""
    assert metrics_ports(9100, 3, taken={9101}) == [9100, 9102, 9103]
    assert metrics_ports(0, 2, taken={0}) == [0, 0]
    with pytest.raises(RelayPortsError, match="OYE_METRICS_PORT=65535"):
        metrics_ports(65535, 2)


def test_oye_up_plans_its_relays_clear_of_its_other_ports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The defaults with two relays: metrics on 9100 and 9102 (9101 is the logger's)."""
    monkeypatch.delenv("OYE_METRICS_PORT", raising=False)
    settings = load_settings(relay_processes=2)
    relays = plan_relays(settings, {})
    assert [r.metrics_port for r in relays] == [9100, 9102]
    crowded = load_settings(relay_processes=2, metrics_port=65535, nats_port=4222)
    with pytest.raises(StartupError, match="OYE_METRICS_PORT"):
        plan_relays(crowded, {})


def test_the_relay_processes_setting_is_checked_at_start() -> None:
    """At least one; a bad value names the variable."""
    with pytest.raises(SettingsError, match="OYE_RELAY_PROCESSES"):
        load_settings(relay_processes=0)
