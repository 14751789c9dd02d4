"""The README tells the truth: every setting documented, the two commands as CI runs them,
and the metric tables name what each service exports."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from oye_api.metrics import INJECT_ROUTE, ApiMetrics
from oye_logger.metrics import LoggerMetrics
from oye_relay.metrics import RelayMetrics
from oye_shared.settings import Settings, env_name
from oye_shared.subjects import Direction

pytestmark = pytest.mark.unit

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text()


def documented_variables() -> set[str]:
    return set(re.findall(r"^\| `([A-Z_]+)` \|", README, re.M))


def test_every_setting_is_documented_and_nothing_else() -> None:
    """The configuration table lists exactly the variables the settings read."""
    assert documented_variables() == {env_name(field) for field in Settings.model_fields}


def test_the_documented_defaults_are_the_real_ones() -> None:
    """Each plain default in the table is the value the settings use."""
    rows = dict(re.findall(r"^\| `([A-Z_]+)` \| `([^`]*)`", README, re.M))
    for field, info in Settings.model_fields.items():
        default = info.get_default(call_default_factory=False)
        shown = rows.get(env_name(field))
        if shown is None or info.default_factory is not None or default is None:
            continue
        if isinstance(default, bool):
            assert shown == str(default).lower(), field
        elif isinstance(default, Path):
            assert Path(shown) == default, field
        else:
            assert type(default)(shown) == default, field


def test_ci_runs_the_readmes_test_command() -> None:
    """.ci/run calls make test, and the README names make run and make test."""
    assert "make run" in README
    assert "make test" in README
    assert "exec make test" in (ROOT / ".ci" / "run").read_text()


# --- the metric tables of "Metrics and health" ------------------------------------------------


@dataclasses.dataclass
class _Session:
    """A connected charger with a CSMS and a secondary backend, as the relay's scrape reads it."""

    charge_point_id: str = "CP-1"
    subprotocol: str | None = "ocpp1.6"
    upstream: object | None = None
    upstream_options: object | None = object()
    replay_backlog: int = 1
    replay_oldest: float | None = 1.0
    secondary_backlogs: dict[str, tuple[int, float | None]] = dataclasses.field(
        default_factory=lambda: {"ha": (1, 1.0)}
    )


@dataclasses.dataclass
class _Publisher:
    depth: int = 0
    capacity: int = 10
    published: int = 0
    overflowed: int = 0


def documented_metrics(heading: str) -> dict[str, set[str]]:
    """The table under ``heading``: each metric's name and its label names (the backticked
    words of the Labels column outside parentheses)."""
    start = README.index(heading)
    table = README[start : README.index("\n\n", README.index("| Metric", start))]
    found = {}
    for name, labels in re.findall(r"^\| `(oye_\w+)` \|([^|]*)\|", table, re.M):
        found[name] = set(re.findall(r"`(\w+)`", re.sub(r"\([^)]*\)", "", labels)))
    return found


def exported_metrics(registry: CollectorRegistry) -> dict[str, set[str]]:
    """Each ``oye_`` metric as exposed (counters with ``_total``), and its label names."""
    found = {}
    for family in registry.collect():
        if not family.name.startswith("oye_"):
            continue
        name = family.name + ("_total" if family.type == "counter" else "")
        found[name] = {label for s in family.samples for label in s.labels} - {"le"}
    return found


def relay_registry() -> CollectorRegistry:
    metrics = RelayMetrics(
        sessions=lambda: [_Session()], publisher=_Publisher(), nats_connected=lambda: True
    )
    metrics.frame(Direction.PROXY_RESPONSE, "Heartbeat")
    metrics.answered("charger", "Heartbeat", 0.01)
    metrics.lane_timed_out("csms")
    metrics.injection_timed_out("Reset")
    return metrics.registry


def api_registry() -> CollectorRegistry:
    metrics = ApiMetrics(nats_connected=lambda: True)
    metrics.answered("POST", INJECT_ROUTE, 200, 0.01, b'{"action": "Reset"}')
    return metrics.registry


def logger_registry() -> CollectorRegistry:
    metrics = LoggerMetrics(nats_connected=lambda: True)
    metrics.batch_written("sqlite", 1, 0.01, 1_750_000_000_000_000)
    metrics.consumer_lag(0, 0)
    return metrics.registry


@pytest.mark.parametrize(
    ("heading", "registry"),
    [
        ("**Relay** (`OYE_METRICS_PORT`)", relay_registry),
        ("**inject-api** (`OYE_HTTP_PORT`)", api_registry),
        ("**Logger** (`OYE_LOGGER_METRICS_PORT`)", logger_registry),
    ],
)
def test_each_services_metric_table_lists_exactly_what_it_exports(
    heading: str, registry: Callable[[], CollectorRegistry]
) -> None:
    """Same metric names (counters with ``_total``), same label names, nothing left out."""
    assert documented_metrics(heading) == exported_metrics(registry())
