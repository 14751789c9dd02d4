"""The metrics' pure parts: call timing, bounded labels, what a scrape reads from live state."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from oye_api.metrics import injected_action
from oye_relay.calls import PendingCalls
from oye_relay.metrics import MAX_CHARGER_SERIES, RelayMetrics
from oye_shared.metric_labels import action_label
from oye_shared.subjects import Direction

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeSession:
    charge_point_id: str
    subprotocol: str | None = "ocpp1.6"
    upstream: object | None = None
    upstream_options: object | None = None
    replay_backlog: int = 0
    replay_oldest: float | None = None


@dataclass
class FakePublisher:
    depth: int = 0
    capacity: int = 10
    published: int = 0
    overflowed: int = 0


def samples(metrics: RelayMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def relay_metrics(
    sessions: list[FakeSession], publisher: FakePublisher | None = None, clock: Clock | None = None
) -> RelayMetrics:
    return RelayMetrics(
        sessions=lambda: sessions,
        publisher=publisher or FakePublisher(),
        nats_connected=lambda: True,
        clock=clock or Clock(),
    )


def test_an_answered_call_reports_its_action_and_how_long_it_took() -> None:
    """The table times each CALL from ``sent`` to ``answered`` on its clock."""
    clock = Clock(10.0)
    heard: list[tuple[str, float]] = []
    calls = PendingCalls(
        on_answered=lambda action, seconds: heard.append((action, seconds)), clock=clock
    )
    calls.sent("a", "BootNotification")
    clock.now = 10.25
    calls.sent("b", "Heartbeat")
    clock.now = 10.75
    assert calls.answered("a") == "BootNotification"
    assert calls.answered("zzz") is None
    assert calls.answered("a") is None  # answered once
    assert heard == [("BootNotification", 0.75)]


def test_a_table_evicts_its_oldest_call_without_timing_it() -> None:
    """Past capacity the oldest call is forgotten; a late answer to it is not observed."""
    heard: list[tuple[str, float]] = []
    calls = PendingCalls(2, on_answered=lambda a, s: heard.append((a, s)), clock=Clock())
    for message_id in "abc":
        calls.sent(message_id, "Heartbeat")
    assert calls.answered("a") is None
    assert calls.answered("c") == "Heartbeat"
    assert len(heard) == 1


def test_action_labels_are_known_ocpp_actions_or_other() -> None:
    """Charger input never becomes a label value of its own."""
    assert action_label("BootNotification") == "BootNotification"
    assert action_label("GetChargingProfiles") == "GetChargingProfiles"  # 2.0.1
    assert action_label("bootnotification") == "other"
    assert action_label("x" * 1000) == "other"
    assert action_label(None) == "other"


def test_the_api_reads_the_action_an_injection_route_sends() -> None:
    """POST /api/inject names it; /smart-charging always sets or clears a profile."""
    inject = "/api/inject/{chargePointId:path}"
    smart = "/api/chargers/{chargePointId:path}/smart-charging"
    assert injected_action(inject, b'{"action": "Reset", "payload": {}}') == "Reset"
    assert injected_action(inject, b'{"action": "MakeCoffee"}') == "other"
    assert injected_action(inject, b"not json") == "other"
    assert injected_action(inject, None) == "other"
    assert injected_action(smart, b'{"maxPower": 16}') == "SetChargingProfile"
    assert injected_action(smart, b'{"action": "clear"}') == "ClearChargingProfile"


def test_frames_count_by_direction_and_proxy_answers_by_action() -> None:
    """Every direction is there from the start; a PROXY_RESPONSE is also an offline answer."""
    metrics = relay_metrics([])
    metrics.frame(Direction.UPSTREAM, "Heartbeat")
    metrics.frame(Direction.PROXY_RESPONSE, "Heartbeat")
    metrics.frame(Direction.PROXY_RESPONSE, "NoSuchAction")
    seen = samples(metrics)
    assert seen[("oye_frames_total", (("direction", "UPSTREAM"),))] == 1
    assert seen[("oye_frames_total", (("direction", "PROXY_RESPONSE"),))] == 2
    assert seen[("oye_frames_total", (("direction", "DOWNSTREAM"),))] == 0
    assert seen[("oye_offline_answers_total", (("action", "Heartbeat"),))] == 1
    assert seen[("oye_offline_answers_total", (("action", "other"),))] == 1


def test_a_scrape_reads_chargers_versions_links_replay_and_the_buffer() -> None:
    """Connected chargers by version, links by state, the replay backlog summed and its
    oldest message's age, the publish buffer as it is now."""
    up, down = object(), None
    sessions = [
        FakeSession("A", "ocpp1.6", upstream=up, upstream_options=object(), replay_backlog=2),
        FakeSession(
            "B",
            "ocpp2.0.1",
            upstream=down,
            upstream_options=object(),
            replay_backlog=3,
            replay_oldest=40.0,
        ),
        FakeSession("C", None, replay_oldest=70.0),
    ]
    publisher = FakePublisher(depth=4, capacity=8, published=9, overflowed=1)
    seen = samples(relay_metrics(sessions, publisher, Clock(100.0)))
    assert seen[("oye_chargers_connected", (("ocpp_version", "1.6"),))] == 1
    assert seen[("oye_chargers_connected", (("ocpp_version", "2.0.1"),))] == 1
    assert seen[("oye_chargers_connected", (("ocpp_version", "2.1"),))] == 0
    assert seen[("oye_chargers_connected", (("ocpp_version", "unknown"),))] == 1
    assert seen[("oye_upstream_connected", (("charge_point_id", "A"),))] == 1
    assert seen[("oye_upstream_connected", (("charge_point_id", "B"),))] == 0
    assert ("oye_upstream_connected", (("charge_point_id", "C"),)) not in seen  # standalone
    assert seen[("oye_upstream_chargers", (("state", "none"),))] == 1
    assert seen[("oye_replay_backlog_messages", ())] == 5
    assert seen[("oye_replay_oldest_age_seconds", ())] == 60
    assert seen[("oye_publish_buffer_messages", ())] == 4
    assert seen[("oye_publish_buffer_capacity", ())] == 8
    assert seen[("oye_published_messages_total", ())] == 9
    assert seen[("oye_publish_overflows_total", ())] == 1
    assert seen[("oye_nats_connected", ())] == 1


def test_sessions_without_replay_attributes_read_as_an_empty_backlog() -> None:
    """Before the offline queue exists, the replay gauges read 0."""

    @dataclass
    class Plain:
        charge_point_id: str
        subprotocol: str | None = "ocpp1.6"
        upstream: object | None = None
        upstream_options: object | None = None

    metrics = RelayMetrics(
        sessions=lambda: [Plain("A")],
        publisher=FakePublisher(),
        nats_connected=lambda: False,
    )
    seen = samples(metrics)
    assert seen[("oye_replay_backlog_messages", ())] == 0
    assert seen[("oye_replay_oldest_age_seconds", ())] == 0
    assert seen[("oye_nats_connected", ())] == 0


def test_per_charger_link_series_are_capped_and_down_links_come_first() -> None:
    """Many chargers: at most MAX_CHARGER_SERIES series, every down one among them; the
    totals by state still count them all."""
    ids = (f"CP{n:05d}" for n in itertools.count())
    sessions = [
        FakeSession(next(ids), upstream=object(), upstream_options=object())
        for _ in range(MAX_CHARGER_SERIES)
    ]
    sessions += [FakeSession(next(ids), upstream=None, upstream_options=object()) for _ in range(5)]
    seen = samples(relay_metrics(sessions))
    links = {labels: v for (name, labels), v in seen.items() if name == "oye_upstream_connected"}
    assert len(links) == MAX_CHARGER_SERIES
    assert sum(v == 0 for v in links.values()) == 5
    assert seen[("oye_upstream_chargers", (("state", "up"),))] == MAX_CHARGER_SERIES
    assert seen[("oye_upstream_chargers", (("state", "down"),))] == 5


def test_each_relay_has_a_registry_of_its_own() -> None:
    """Two relays in one process count apart (no global registry)."""
    first, second = relay_metrics([]), relay_metrics([])
    first.frame(Direction.DOWNSTREAM, None)
    assert samples(first)[("oye_frames_total", (("direction", "DOWNSTREAM"),))] == 1
    assert samples(second)[("oye_frames_total", (("direction", "DOWNSTREAM"),))] == 0


def test_secondaries_backlogs_are_summed_per_backend_apart_from_the_primarys() -> None:
    """oye_secondary_replay_backlog_messages{backend}; the primary's gauges stay as they were."""

    @dataclass
    class WithSecondaries(FakeSession):
        secondary_backlogs: dict[str, tuple[int, float | None]] = field(default_factory=dict)

    sessions = [
        WithSecondaries(
            "A", replay_backlog=1, secondary_backlogs={"ha": (2, 50.0), "em": (0, None)}
        ),
        WithSecondaries("B", secondary_backlogs={"ha": (3, 60.0)}),
    ]
    seen = samples(relay_metrics(sessions, clock=Clock(100.0)))  # type: ignore[arg-type]
    assert seen[("oye_secondary_replay_backlog_messages", (("backend", "ha"),))] == 5
    assert seen[("oye_secondary_replay_backlog_messages", (("backend", "em"),))] == 0
    assert seen[("oye_replay_backlog_messages", ())] == 1
