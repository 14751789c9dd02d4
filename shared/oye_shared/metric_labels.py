"""What every service's Prometheus metrics share: latency buckets and bounded action labels."""

from __future__ import annotations

from oye_shared.schemas import all_actions

#: Round trips from half a millisecond (a charger on the LAN) to 30 s (the default timeout).
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
OTHER = "other"
KNOWN_ACTIONS = all_actions("1.6") | all_actions("2.0.1") | all_actions("2.1")


def action_label(action: object) -> str:
    """``action`` if it is an OCPP action, else ``other``: labels from untrusted input
    (a charger's frames, a request body) must not grow without bound."""
    return action if isinstance(action, str) and action in KNOWN_ACTIONS else OTHER
