"""The logger's fast protocol parse hands over exactly what nats-py's parser would.

nats-py's own ``Parser`` with the router in ``_process_msg`` is the reference: the same
bytes, cut into reads anywhere, must give the same calls in the same order (tapped
messages to the sink, the rest to the client), the same statistics and the same errors.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nats.errors import ProtocolError
from nats.protocol.parser import Parser

from oye_logger import nats_internals

pytestmark = pytest.mark.unit

TAPPED, OTHER = 5, 9


class FakeClient:
    """What nats-py's parser calls on its client, recording every call in order."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.stats = {"in_msgs": 0, "in_bytes": 0}
        self._ps = Parser(self)

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        self.events.append(("msg", sid, subject, reply, data, headers))

    async def _process_ping(self) -> None:
        self.events.append(("ping",))

    async def _process_pong(self) -> None:
        self.events.append(("pong",))

    async def _process_info(self, info: dict[str, Any]) -> None:
        self.events.append(("info", info))

    async def _process_err(self, err: str) -> None:
        self.events.append(("err", err))


class Sub:
    _id = TAPPED


def tapped_client(*, fast: bool, monkeypatch: pytest.MonkeyPatch | None = None) -> FakeClient:
    nc = FakeClient()

    def sink(messages: list[nats_internals.RawMessage]) -> None:
        nc.events.extend(("tapped", *message) for message in messages)

    if fast:
        assert nats_internals.tap(nc, Sub(), sink)  # type: ignore[arg-type]
        assert nats_internals.fast_parse_installed(nc)  # type: ignore[arg-type]
    else:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(nats_internals, "PARSER", "_no_such_parser")
            assert nats_internals.tap(nc, Sub(), sink)  # type: ignore[arg-type]
        assert not nats_internals.fast_parse_installed(nc)  # type: ignore[arg-type]
    return nc


async def feed(nc: FakeClient, chunks: list[bytes]) -> None:
    for chunk in chunks:
        await nc._ps.parse(chunk)


def run(stream: bytes, cuts: list[int]) -> tuple[list[Any], list[Any]]:
    """The calls of the reference and of the fast parse, reading ``stream`` in pieces."""
    bounds = sorted({0, len(stream), *(cut % (len(stream) + 1) for cut in cuts)})
    chunks = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    results = []
    for fast in (False, True):
        nc = tapped_client(fast=fast)
        asyncio.run(feed(nc, chunks))
        results.append([*nc.events, ("stats", nc.stats), ("left", bytes(nc._ps.buf))])
    return results[0], results[1]


def hmsg(sid: int, subject: bytes, reply: bytes | None, headers: bytes, data: bytes) -> bytes:
    args = b" ".join([subject, b"%d" % sid, *([reply] if reply else [])])
    size = len(headers) + len(data)
    return b"HMSG %s %d %d\r\n%s%s\r\n" % (args, len(headers), size, headers, data)


def msg(sid: int, subject: bytes, reply: bytes | None, data: bytes) -> bytes:
    args = b" ".join([subject, b"%d" % sid, *([reply] if reply else [])])
    return b"MSG %s %d\r\n%s\r\n" % (args, len(data), data)


TOKEN = st.binary(min_size=1, max_size=12).map(
    lambda b: bytes(c for c in b if c > 32 and c != 127) or b"x"
)
DATA = st.binary(max_size=60) | st.sampled_from([b"HMSG a 5 r 1 1\r\n", b"\r\n\r\n", b""])
HEADERS = st.sampled_from(
    [b"NATS/1.0\r\nA: b\r\n\r\n", b"NATS/1.0\r\n\r\n", b"NATS/1.0 408 Request Timeout\r\n\r\n"]
)
ELEMENT = st.one_of(
    st.builds(hmsg, st.sampled_from([TAPPED, OTHER]), TOKEN, TOKEN | st.none(), HEADERS, DATA),
    st.builds(msg, st.sampled_from([TAPPED, OTHER]), TOKEN, TOKEN | st.none(), DATA),
    st.sampled_from(
        [
            b"PING\r\n",
            b"PONG\r\n",
            b"+OK\r\n",
            b'INFO {"server_id": "x"}\r\n',
            b"-ERR 'Stale Connection'\r\n",
        ]
    ),
)


@settings(max_examples=300, deadline=None)
@given(elements=st.lists(ELEMENT, max_size=12), cuts=st.lists(st.integers(0, 10_000)))
def test_any_stream_read_in_any_pieces_gives_what_nats_py_gives(
    elements: list[bytes], cuts: list[int]
) -> None:
    """Messages for the tap and for others, statuses and control lines, cut anywhere."""
    reference, fast = run(b"".join(elements), cuts)
    assert fast == reference


def test_a_batch_of_deliveries_reaches_the_sink_in_one_call_per_read() -> None:
    """Whole messages of a read go over together; the rest waits for the next read."""
    calls: list[int] = []
    nc = FakeClient()
    assert nats_internals.tap(nc, Sub(), lambda batch: calls.append(len(batch)))  # type: ignore[arg-type]
    one = hmsg(TAPPED, b"oye.frames.a.UPSTREAM", b"$JS.ACK.1", b"NATS/1.0\r\nA: b\r\n\r\n", b"[]")
    stream = one * 10
    asyncio.run(feed(nc, [stream[: len(one) * 4 + 7], stream[len(one) * 4 + 7 :]]))
    assert calls == [4, 6]
    assert nc.stats == {"in_msgs": 10, "in_bytes": 20}
    assert nc.events == []


def test_a_message_begun_before_the_tap_is_finished_by_nats_py() -> None:
    """nats-py stopped inside a message when the tap came: it finishes that one alone."""
    nc = FakeClient()
    first = msg(OTHER, b"other", None, b"0123456789")
    tapped = hmsg(TAPPED, b"t", b"r", b"NATS/1.0\r\nA: b\r\n\r\n", b"x")
    got: list[Any] = []
    asyncio.run(nc._ps.parse(first[:20]))
    assert nats_internals.tap(nc, Sub(), got.extend)  # type: ignore[arg-type]
    asyncio.run(nc._ps.parse(first[20:] + tapped))
    assert nc.events == [("msg", OTHER, b"other", b"", b"0123456789", None)]
    assert got == [(b"t", b"r", b"x", b"NATS/1.0\r\nA: b\r\n\r\n")]


def test_unknown_protocol_is_the_error_nats_py_raises() -> None:
    """What neither parser knows raises nats-py's ProtocolError, after what came before."""
    for fast in (False, True):
        nc = tapped_client(fast=fast)
        with pytest.raises(ProtocolError):
            asyncio.run(feed(nc, [msg(TAPPED, b"t", b"r", b"x") + b"BOGUS\r\n"]))
        assert nc.events == [("tapped", b"t", b"r", b"x", None)]


def test_a_reset_parser_drops_what_the_old_connection_left() -> None:
    """After a reconnect (``Parser.reset``) only the new connection's bytes count."""
    nc = tapped_client(fast=True)
    tapped = hmsg(TAPPED, b"t", b"r", b"NATS/1.0\r\nA: b\r\n\r\n", b"x")
    asyncio.run(feed(nc, [tapped[:-3]]))
    nc._ps.reset()
    asyncio.run(feed(nc, [b"PING\r\n", tapped]))
    assert nc.events == [("ping",), ("tapped", b"t", b"r", b"x", b"NATS/1.0\r\nA: b\r\n\r\n")]


def test_without_taps_the_parse_is_nats_pys_own() -> None:
    """Untapped again, every message goes to the client as before."""
    nc = tapped_client(fast=True)
    nats_internals.untap(nc, Sub())  # type: ignore[arg-type]
    asyncio.run(feed(nc, [msg(TAPPED, b"t", b"r", b"x")]))
    assert nc.events == [("msg", TAPPED, b"t", b"r", b"x", None)]
