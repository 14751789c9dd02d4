"""The relay's Prometheus metrics: one registry per :class:`~oye_relay.server.Relay`.

Nothing here uses prometheus-client's global registry: a process may run several relays
(the tests do), and each owns a :class:`RelayMetrics`, reachable from every session's
:class:`~oye_relay.traffic.TrafficTap`.

Two kinds of metric:

* **Events** (frames, round trips, timeouts, the proxy's own answers) are counted where
  they happen. On the forwarding path that is one ``inc()`` on a child resolved in advance.
* **State** (connected chargers, each charger's CSMS link, the replay backlog, the publish
  buffer, NATS) is read from the live relay only when Prometheus scrapes, by
  :class:`LiveCollector`; forwarding never pays for it.

Label values are bounded: ``action`` is a known OCPP action or ``other``; per-charger series
(``oye_upstream_connected``) stop at :data:`MAX_CHARGER_SERIES` chargers.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from oye_shared.metric_labels import LATENCY_BUCKETS, action_label
from oye_shared.state import OCPP_VERSIONS
from oye_shared.subjects import Direction

#: At most this many chargers get their own ``oye_upstream_connected`` series (those whose
#: CSMS link is down first); ``oye_upstream_chargers`` always counts every charger.
MAX_CHARGER_SERIES = 1000
Family = GaugeMetricFamily | CounterMetricFamily
#: Every action of OCPP 1.6, 2.0.1 and 2.1: the only values the ``action`` label takes.
OCPP_VERSION_LABELS = (*OCPP_VERSIONS.values(), "unknown")


class LiveSession(Protocol):
    """What the scrape reads from a charger session."""

    @property
    def charge_point_id(self) -> str: ...

    @property
    def subprotocol(self) -> str | None: ...

    @property
    def upstream(self) -> object | None: ...

    @property
    def upstream_options(self) -> object | None: ...


class PublishBuffer(Protocol):
    """What the scrape reads from the publisher."""

    @property
    def depth(self) -> int: ...

    @property
    def capacity(self) -> int: ...

    @property
    def published(self) -> int: ...

    @property
    def overflowed(self) -> int: ...


class RelayMetrics:
    """The relay's registry and the metrics updated as things happen."""

    def __init__(
        self,
        *,
        sessions: Callable[[], Iterable[LiveSession]],
        publisher: PublishBuffer,
        nats_connected: Callable[[], bool],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        frames = Counter(
            "oye_frames",
            "Frames the relay handled, by direction (as published on NATS).",
            ["direction"],
            registry=registry,
        )
        #: One child per direction, resolved once: the hot path only increments.
        self.frames = {direction: frames.labels(direction.value) for direction in Direction}
        self.call_duration = Histogram(
            "oye_call_duration_seconds",
            "CALL round trips by who called: charger (answered by the CSMS), csms (answered "
            "by the charger) or injected (the owner's, answered by the charger).",
            ["caller", "action"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.lane_timeouts = Counter(
            "oye_lane_timeouts",
            "CALLs towards a charger left unanswered at their deadline (the lane moved on), "
            "by origin: csms or injected.",
            ["origin"],
            registry=registry,
        )
        self.injection_timeouts = Counter(
            "oye_injection_timeouts",
            "Injected CALLs that got no answer in time (sent or still waiting in the lane).",
            ["action"],
            registry=registry,
        )
        self.offline_answers = Counter(
            "oye_offline_answers",
            "CALLs the proxy answered itself in the CSMS's place (PROXY_RESPONSE frames).",
            ["action"],
            registry=registry,
        )
        for origin in ("csms", "injected"):
            self.lane_timeouts.labels(origin)
        #: Children resolved on first use (``labels()`` per CALL was slow); the keys are
        #: bounded like the labels: a caller of ours and a known action or ``other``.
        self._durations: dict[tuple[str, str], Histogram] = {}
        self._offline_answers: dict[str, Counter] = {}
        registry.register(LiveCollector(sessions, publisher, nats_connected, clock))
        ProcessCollector(registry=registry)

    def frame(self, direction: Direction, action: str | None) -> None:
        """One frame passed (or was produced) in ``direction``."""
        self.frames[direction].inc()
        if direction is Direction.PROXY_RESPONSE:
            label = action_label(action)
            child = self._offline_answers.get(label)
            if child is None:
                child = self._offline_answers[label] = self.offline_answers.labels(label)
            child.inc()

    def answered(self, caller: str, action: str | None, seconds: float) -> None:
        """A CALL ``caller`` made was answered ``seconds`` after it was made."""
        key = (caller, action_label(action))
        child = self._durations.get(key)
        if child is None:
            child = self._durations[key] = self.call_duration.labels(*key)
        child.observe(seconds)

    def lane_timed_out(self, origin: str) -> None:
        self.lane_timeouts.labels(origin).inc()

    def injection_timed_out(self, action: str | None) -> None:
        self.injection_timeouts.labels(action_label(action)).inc()


class LiveCollector:
    """Reads the relay's state when Prometheus scrapes (in the event loop's thread)."""

    def __init__(
        self,
        sessions: Callable[[], Iterable[LiveSession]],
        publisher: PublishBuffer,
        nats_connected: Callable[[], bool],
        clock: Callable[[], float],
    ) -> None:
        self._sessions = sessions
        self._publisher = publisher
        self._nats_connected = nats_connected
        self._clock = clock

    def describe(self) -> list[Metric]:
        return list(self._families().values())

    def collect(self) -> list[Metric]:
        families = self._families()
        now = self._clock()
        sessions = list(self._sessions())
        versions = Tally(OCPP_VERSIONS.get(s.subprotocol or "", "unknown") for s in sessions)
        for version in OCPP_VERSION_LABELS:
            families["chargers"].add_metric([version], versions[version])
        links = {s.charge_point_id: _upstream_state(s) for s in sessions}
        states = Tally(links.values())
        for state in ("up", "down", "none"):
            families["upstreams"].add_metric([state], states[state])
        configured = sorted(
            (state == "up", charge_point_id)
            for charge_point_id, state in links.items()
            if state != "none"
        )
        for is_up, charge_point_id in configured[:MAX_CHARGER_SERIES]:
            families["upstream"].add_metric([charge_point_id], 1 if is_up else 0)
        backlog = 0
        oldest: float | None = None
        for session in sessions:
            backlog += getattr(session, "replay_backlog", 0) or 0
            queued_at = getattr(session, "replay_oldest", None)
            if queued_at is not None and (oldest is None or queued_at < oldest):
                oldest = queued_at
        families["backlog"].add_metric([], backlog)
        families["oldest"].add_metric([], max(now - oldest, 0.0) if oldest is not None else 0)
        # Secondaries are few and named by the owner: one series per backend name.
        secondaries: Tally[str] = Tally()
        for session in sessions:
            backlogs = getattr(session, "secondary_backlogs", None) or {}
            for name, (depth, _) in backlogs.items():
                secondaries[name] += depth
        for name in sorted(secondaries):
            families["secondary_backlog"].add_metric([name], secondaries[name])
        publisher = self._publisher
        families["depth"].add_metric([], publisher.depth)
        families["capacity"].add_metric([], publisher.capacity)
        families["published"].add_metric([], publisher.published)
        families["overflows"].add_metric([], publisher.overflowed)
        families["nats"].add_metric([], 1 if self._nats_connected() else 0)
        return list(families.values())

    @staticmethod
    def _families() -> dict[str, Family]:
        def gauge(name: str, documentation: str, labels: Iterable[str] = ()) -> Family:
            return GaugeMetricFamily(name, documentation, labels=list(labels))

        def counter(name: str, documentation: str) -> Family:
            return CounterMetricFamily(name, documentation, labels=[])

        return {
            "chargers": gauge(
                "oye_chargers_connected",
                "Chargers connected now, by OCPP version.",
                ["ocpp_version"],
            ),
            "upstreams": gauge(
                "oye_upstream_chargers",
                "Connected chargers by the state of their CSMS link: up, down, or none "
                "(standalone, no CSMS configured).",
                ["state"],
            ),
            "upstream": gauge(
                "oye_upstream_connected",
                "1 while a charger's CSMS link is up, 0 while it is down (chargers with a CSMS "
                f"only; at most {MAX_CHARGER_SERIES} chargers, those that are down first).",
                ["charge_point_id"],
            ),
            "backlog": gauge(
                "oye_replay_backlog_messages",
                "Messages the CSMS missed while unreachable, waiting to be replayed to it.",
            ),
            "oldest": gauge(
                "oye_replay_oldest_age_seconds",
                "Age of the oldest message waiting to be replayed (0 when none waits).",
            ),
            "secondary_backlog": gauge(
                "oye_secondary_replay_backlog_messages",
                "Messages a secondary backend missed while unreachable, waiting to be "
                "replayed to it (connected chargers).",
                ["backend"],
            ),
            "depth": gauge(
                "oye_publish_buffer_messages", "Frames and events waiting to be published to NATS."
            ),
            "capacity": gauge(
                "oye_publish_buffer_capacity", "Size of the publish buffer (OYE_PUBLISH_BUFFER)."
            ),
            "published": counter("oye_published_messages", "Messages confirmed by NATS."),
            "overflows": counter(
                "oye_publish_overflows", "Messages dropped because the publish buffer was full."
            ),
            "nats": gauge("oye_nats_connected", "1 while connected to NATS, else 0."),
        }


def _upstream_state(session: LiveSession) -> str:
    if session.upstream_options is None:
        return "none"
    return "up" if session.upstream is not None else "down"
