"""Which offline replay queues may hold messages, known without asking NATS per connect.

Every charger's connect needs its backlog, and nearly every answer is "none": in a
storm of 9,000 chargers those were 9,000 JetStream requests (docs/PERFORMANCE.md). The
relay follows the replay stream instead: it subscribes to every append from now on (an
ordered consumer, headers only, so a NATS reconnect leaves no gap), then reads which
subjects hold messages now. A subject it has never seen a message on has none, and its
backlog is empty without a request; for the others the stream is asked as before.

The index says "empty" only when it is exact: after it has seen every append up to the
stream's last sequence as NATS tells it after the question began (:class:`StreamTail`,
one question for every connect waiting meanwhile), so an append another relay made before
the charger came here is never missed. Deletions are not seen (a replayed message is
deleted by whichever relay replayed it): a subject stays marked until a request finds it
empty, and is unmarked then only if no append arrived meanwhile.
"""

from __future__ import annotations

import asyncio
import logging

from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js.api import DeliverPolicy
from nats.js.client import JetStreamContext

from oye_shared.stream_tail import StreamTail

log = logging.getLogger(__name__)


class ReplayIndex:
    """Replay subjects that may hold messages: a count of the appends seen on each."""

    def __init__(self, js: JetStreamContext, stream: str, subjects: str) -> None:
        self.js = js
        self.stream = stream
        self.subjects = subjects
        self.tail = StreamTail(js, stream)
        #: Until the stream's subjects are read (and after following ended): ask NATS.
        self.loaded = False
        #: Every append up to this sequence is counted.
        self.seen = 0
        self._appends: dict[str, int] = {}

    async def surely_empty(self, subject: str) -> bool:
        """True only if no message can be waiting on ``subject``; False: ask NATS."""
        if self.may_hold(subject):
            return False
        try:
            last = await self.tail.last_sequence()
        except (NatsError, OSError, TimeoutError):
            return False
        return self.seen >= last and not self.may_hold(subject)  # an append came meanwhile?

    def appended(self, subject: str) -> None:
        self._appends[subject] = self._appends.get(subject, 0) + 1

    def may_hold(self, subject: str) -> bool:
        return not self.loaded or subject in self._appends

    def mark(self, subject: str) -> int:
        """What the index knew before asking NATS (see :meth:`found_empty`)."""
        return self._appends.get(subject, 0)

    def found_empty(self, subject: str, mark: int) -> None:
        """NATS said the subject is empty: forget it, unless an append came meanwhile."""
        if self._appends.get(subject, 0) == mark:
            self._appends.pop(subject, None)

    async def follow(self) -> None:
        """Note every append from now on, then what the stream holds, until cancelled."""
        js, stream, subjects = self.js, self.stream, self.subjects
        try:
            subscription = await js.subscribe(
                subjects,
                stream=stream,
                cb=self._on_append,
                ordered_consumer=True,
                deliver_policy=DeliverPolicy.NEW,
                headers_only=True,
            )
            try:
                # After subscribing, so an append in between is seen by one or the other.
                info = await js.stream_info(stream, subjects_filter=subjects)
                for subject, count in (info.state.subjects or {}).items():
                    if count:
                        self.appended(subject)
                self.seen = max(self.seen, info.state.last_seq)
                self.loaded = True
                await asyncio.Future()  # until cancelled
            finally:
                await subscription.unsubscribe()
        except (NatsError, OSError) as exc:
            log.warning("no longer following the replay stream (%s); asking it per charger", exc)
        finally:
            self.loaded = False  # an index nobody updates must not be trusted

    async def _on_append(self, msg: Msg) -> None:
        self.appended(msg.subject)
        self.seen = max(self.seen, msg.metadata.sequence.stream)
