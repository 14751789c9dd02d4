"""Automatic charging: when the CSMS is unavailable, a connector that becomes ready for a
car gets a remote start with the owner's ``defaultIdTag`` (pure: which call, if any)."""

from __future__ import annotations

import itertools
from typing import Any

from oye_shared.frames import Frame
from oye_shared.inject import InjectRequest

_remote_start_ids = itertools.count(1)


def remote_start_for(
    frame: Frame, *, id_tag: str, open_transactions: dict[str, dict[str, Any]]
) -> InjectRequest | None:
    """The remote start this charger CALL calls for, or None.

    1.6: StatusNotification ``Preparing`` on a connector > 0. 2.0.1 and 2.1:
    StatusNotification ``Occupied`` on an EVSE > 0 that has no open transaction (a charger
    whose transactions start at plug-in has opened one already).
    """
    if frame.action != "StatusNotification" or not isinstance(frame.payload, dict):
        return None
    payload = frame.payload
    connector = payload.get("connectorId")
    if payload.get("status") == "Preparing" and isinstance(connector, int) and connector > 0:
        return InjectRequest(
            action="RemoteStartTransaction",
            payload={"connectorId": connector, "idTag": id_tag},
        )
    evse = payload.get("evseId")
    if payload.get("connectorStatus") == "Occupied" and isinstance(evse, int) and evse > 0:
        if any(t.get("evseId") == evse for t in open_transactions.values()):
            return None
        return InjectRequest(
            action="RequestStartTransaction",
            payload={
                "idToken": {"idToken": id_tag, "type": "Central"},
                "remoteStartId": next(_remote_start_ids),
                "evseId": evse,
            },
        )
    return None
