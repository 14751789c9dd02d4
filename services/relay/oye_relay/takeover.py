"""A charger that connects to another relay takes over: this relay lets its old
connection go, as it would for a second connection to itself."""

from __future__ import annotations

import contextlib
import json
import logging

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from oye_relay.session import REPLACED_REASON, ChargerSession
from oye_shared.subjects import EventKind, Subjects

log = logging.getLogger(__name__)


async def follow_takeovers(
    nc: Client, subjects: Subjects, relay_id: str, sessions: dict[str, ChargerSession]
) -> Subscription:
    """Close our session of any charger that another relay announces as connected."""

    async def on_connected(msg: Msg) -> None:
        try:
            body = json.loads(msg.data)
            charge_point_id = subjects.charge_point_of(msg.subject)
        except (ValueError, IndexError):
            return
        if body.get("relay") == relay_id:
            return
        session = sessions.get(charge_point_id)
        if session is None:
            return
        log.info("%r connected to relay %s; closing it here", charge_point_id, body.get("relay"))
        session.tap.event(EventKind.REPLACED, by=body.get("sessionId"), byRelay=body.get("relay"))
        with contextlib.suppress(Exception):
            await session.close(1000, REPLACED_REASON)

    return await nc.subscribe(f"{subjects.prefix}.events.*.{EventKind.CONNECTED}", cb=on_connected)
