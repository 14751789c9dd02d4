"""The simulated charger behind ``oye simulate``: a real OCPP 1.6 / 2.0.1 peer.

See :mod:`.charger` for use. The modules, one concern each:

* :mod:`.charger` — :class:`SimulatedCharger`: connection, life cycle, the calls it sends
* :mod:`.v16`, :mod:`.v201` — the version peers: what they send, how they answer a CSMS
* :mod:`.v16_smart_charging`, :mod:`.v201_smart_charging` — their smart-charging handlers
* :mod:`.v16_management`, :mod:`.v201_management` — local list, reservations (2.0.1:
  transaction status) handlers; :mod:`.local_auth` their rules (pure)
* :mod:`.configuration` (1.6 keys), :mod:`.device_model` (2.0.1 variables)
* :mod:`.smart_charging` — profile store and composite schedule (pure)
* :mod:`.profile_rules` — which profiles a charger accepts and reports (pure)
* :mod:`.state` — connectors, transactions, what the CSMS asked for
* :mod:`.frame_log` — every raw frame in order, and waiting for one
* :mod:`.ocpp_peer` — the typed face of the untyped ``ocpp`` package, and its fixes

What ``oye simulate`` (:mod:`oye_cli.simulate`) adds around it:

* :mod:`.fleet` — many chargers, one stop; :mod:`.runner` — one charger's life: boot,
  heartbeats, a session, reboot after Reset, reconnection
* :mod:`.sessions` — a charging session and its meter values, either version
* :mod:`.reconnect` — backoff and which refusals are final (pure)
* :mod:`.console` — one readable line per frame (pure)
"""

from oye_cli.simulator.charger import (
    SUBPROTOCOL,
    SimulatedCharger,
    SimulatorError,
    Version,
    basic_authorization,
    charger_url,
)
from oye_cli.simulator.frame_log import FrameLog, RecordedFrame, is_call, is_reply_to

__all__ = [
    "SUBPROTOCOL",
    "FrameLog",
    "RecordedFrame",
    "SimulatedCharger",
    "SimulatorError",
    "Version",
    "basic_authorization",
    "charger_url",
    "is_call",
    "is_reply_to",
]
