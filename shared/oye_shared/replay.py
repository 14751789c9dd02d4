"""Where the offline replay queue lives on NATS, and how any service reads its backlog.

While a configured CSMS is unreachable the relay answers the charger itself and keeps the
messages the CSMS needs for billing and history in a JetStream stream, one subject per
charger (``{prefix}.replay.{cp}``), in arrival order. When the CSMS is back, the relay
that holds the charger replays that subject and deletes each message once the CSMS has
answered it. The 1.6 transaction ids the CSMS gives replayed StartTransactions are kept in
the ``{P}_txmap`` bucket (``kv_key(cp)`` -> ``{"<proxy id>": <CSMS id>, ...}``).

A secondary backend that was down has its own queue in the same stream, one token deeper
(``{prefix}.replay.{cp}.{backend}``), and its own map (key ``kv_key(cp).{backend}``:
the charger's transaction id -> that backend's). The primary's exact subject never matches
a secondary's, so each is read and counted apart.

Messages have no age limit: a queue waits for its backend however long it takes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from oye_shared import headers as h
from oye_shared.subjects import Subjects, kv_key

TXMAP_BUCKET = "txmap"


def txmap_key(charge_point_id: str, backend: str | None = None) -> str:
    """The ``{P}_txmap`` key of the primary's map (``backend`` None) or a secondary's
    (``kv_key`` is base64, without dots, so the two can never collide)."""
    key = kv_key(charge_point_id)
    return f"{key}.{backend}" if backend else key


def replay_stream_name(prefix: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", prefix).upper() + "_REPLAY"


def replay_stream_config(prefix: str) -> StreamConfig:
    return StreamConfig(
        name=replay_stream_name(prefix),
        subjects=[Subjects(prefix).all_replay],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
    )


@dataclass(frozen=True, slots=True)
class Backlog:
    """A charger's queue: how many messages, and when the oldest arrived (RFC 3339)."""

    depth: int = 0
    oldest: str | None = None


async def charger_backlog(
    js: JetStreamContext, prefix: str, charge_point_id: str, backend: str | None = None
) -> Backlog:
    """The backlog of one charger towards the primary, or towards the secondary ``backend``.

    Every charger's connect asks, and nearly always there is none: the first message of
    its subject is asked for first (a short "not found" then), the stream's depth for that
    subject only when there is one (its answer carries the stream's whole configuration).
    """
    subject = Subjects(prefix).replay(charge_point_id, backend)
    stream = replay_stream_name(prefix)
    try:
        first = await js.get_msg(stream, seq=1, subject=subject, next=True)
        info = await js.stream_info(stream, subjects_filter=subject)
    except NotFoundError:  # no stream yet, nothing queued, or replayed meanwhile
        return Backlog()
    depth = (info.state.subjects or {}).get(subject, 0)
    return Backlog(depth, (first.headers or {}).get(h.TIME)) if depth else Backlog()


async def secondary_backlogs(
    js: JetStreamContext, prefix: str, charge_point_id: str
) -> dict[str, Backlog]:
    """Every secondary backend's backlog of one charger, by backend name (those with one)."""
    pattern = Subjects(prefix).replay(charge_point_id, "*")
    try:
        info = await js.stream_info(replay_stream_name(prefix), subjects_filter=pattern)
    except NotFoundError:
        return {}
    found: dict[str, Backlog] = {}
    for subject, depth in sorted((info.state.subjects or {}).items()):
        backlog = await _oldest(js, prefix, subject, depth)
        if backlog.depth:
            found[subject.rsplit(".", 1)[-1]] = backlog
    return found


async def _oldest(js: JetStreamContext, prefix: str, subject: str, depth: int) -> Backlog:
    if depth == 0:
        return Backlog()
    try:
        first = await js.get_msg(replay_stream_name(prefix), seq=1, subject=subject, next=True)
    except NotFoundError:  # replayed meanwhile
        return Backlog()
    return Backlog(depth, (first.headers or {}).get(h.TIME))


async def total_backlog(js: JetStreamContext, prefix: str) -> int:
    """Messages waiting in every charger's queue, the secondaries' included."""
    try:
        info = await js.stream_info(replay_stream_name(prefix))
    except NotFoundError:
        return 0
    return info.state.messages
