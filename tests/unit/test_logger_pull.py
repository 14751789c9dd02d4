"""The logger's header parsing gives what nats-py's would; raw messages become deliveries."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nats.aio.client import Client

from oye_logger.header_blocks import HeaderReader, parse_header_block, parse_header_lines
from oye_logger.pull import Delivery, PullSubscription
from oye_shared import headers as h

pytestmark = pytest.mark.unit


def nats_py(block: bytes) -> dict[str, str] | None:
    """What nats-py makes of a header block without a status line."""
    return Client._parse_header_lines(block.removeprefix(b"NATS/1.0\r\n")) or None


def block(lines: list[bytes]) -> bytes:
    return b"NATS/1.0\r\n" + b"".join(line + b"\r\n" for line in lines) + b"\r\n"


RELAY_HEADERS = {
    h.DIRECTION: "UPSTREAM",
    h.CHARGE_POINT: "CP-ü 1",
    h.TIME: "2025-06-01T12:00:00.123456Z",
    h.FRAME_ID: "20250601120000120abcdef0100000001",
    h.NATS_MSG_ID: "20250601120000120abcdef0100000001",
    h.SUBPROTOCOL: "ocpp1.6",
    h.RELAY: "relay-a",
    h.MESSAGE_TYPE: "MALFORMED",
    h.ERROR: "Expecting value: line 1 column 1 (char 0)",
}


def test_the_relays_headers_are_read_as_nats_py_reads_them() -> None:
    """Every header the relay writes, non-ASCII and ": " in values included."""
    raw = block([f"{k}: {v}".encode() for k, v in RELAY_HEADERS.items()])
    assert parse_header_block(raw) == nats_py(raw) == RELAY_HEADERS


@pytest.mark.parametrize(
    "lines",
    [
        [],
        [b"A: "],  # an empty value
        [b"A:  padded  "],
        [b"A:\tb"],
        [b"A:b"],
        [b"A b: c"],  # whitespace in a name: skipped
        [b"A:b: c"],  # cut at the first colon
        [b"\xc3\xa9: c"],  # a non-ASCII name: skipped
        [b"A: b\rc"],
        [b"A: b\nC: d"],
        [b"A: \xff\xfe"],  # not UTF-8: replaced
        [b"A: 1", b"", b"B: 2"],
        [b"no colon", b"A: 1"],
        [b"A: 1", b"A: 2"],  # the last one wins
        [b"A\x1f: 1"],
    ],
)
def test_unusual_headers_are_read_as_nats_py_reads_them(lines: list[bytes]) -> None:
    """Whatever a publisher wrote, the result is nats-py's."""
    raw = block(lines)
    assert parse_header_block(raw) == nats_py(raw)


LINE = st.binary(max_size=30) | st.text(
    alphabet=st.sampled_from("Ab-: \t\r\n\x0b\x1f\xa0é\x00"), max_size=20
).map(str.encode)


@given(lines=st.lists(LINE, max_size=6))
def test_any_header_block_is_read_as_nats_py_reads_it(lines: list[bytes]) -> None:
    """Arbitrary bytes between the line ends: the same dict as nats-py, or None as it."""
    raw = block(lines)
    assert parse_header_block(raw) == nats_py(raw)
    assert parse_header_lines(raw[len(b"NATS/1.0\r\n") :]) == (nats_py(raw) or {})


NAMES = ("A", "B", "Oye-N", "X", "Absent")


def wanted(raw: bytes) -> tuple[str | None, ...]:
    """The values of NAMES nats-py reads from a block (None for each one absent)."""
    headers = nats_py(raw) or {}
    return tuple(headers.get(name) for name in NAMES)


def test_a_known_layout_is_read_as_nats_py_reads_it_whatever_its_values() -> None:
    """Once a layout is known, values nats-py would strip or cut are still read its way."""
    reader = HeaderReader(NAMES)
    layout = block([b"A: 1", b"B: 2"])
    assert reader(layout) == reader(layout) == ("1", "2", None, None, None)
    for lines in (
        [b"A:  1", b"B: 2"],
        [b"A: 1 ", b"B: 2"],
        [b"A: 1\t", b"B: 2"],
        [b"A: \x0b1", b"B: 2"],
        [b"A: 1: 2", b"B: x\ry"],
        [b"A: ", b"B: 2"],
        [b"A: 1", b"B :2"],
        [b"A: 1", b"A: 2"],
        [b"B: 1", b"A: 2"],
        [b"A: \xff", b"B: \xc3\xa9"],
    ):
        raw = block(lines)
        assert reader(raw) == wanted(raw), lines


def test_the_relays_headers_are_read_as_nats_py_reads_them_every_time() -> None:
    """The relay's layout, read the long way first, then by its pattern."""
    names = tuple(RELAY_HEADERS)
    reader = HeaderReader(names)
    raw = block([f"{k}: {v}".encode() for k, v in RELAY_HEADERS.items()])
    assert reader(raw) == reader(raw) == tuple(RELAY_HEADERS.values())


def test_past_its_layout_limit_a_reader_still_reads_every_block() -> None:
    """Layouts are bounded; blocks beyond them take the long way, with the same result."""
    reader = HeaderReader(NAMES, max_layouts=1)
    for lines in ([b"A: 1"], [b"B: 2"], [b"A: 1", b"B: 2"], [b"B: 3"]):
        raw = block(lines)
        assert reader(raw) == reader(raw) == wanted(raw)


#: Names in a few layouts, so that blocks come again in a layout already learnt.
LAYOUT = st.sampled_from(
    [("A",), ("A", "B"), ("B", "A"), ("A", "B", "X"), ("A", "A"), ("A b", "B"), ("é", "A:")]
)
VALUE = st.sampled_from(
    [
        "a",
        "b c",
        "d: e",
        "",
        " a",
        "a ",
        "\ta",
        "a\t",
        "\x0ba",
        "a\x0c",
        "a\rb",
        "é",
        "\x1f",
        "\x00",
    ]
)
LAYOUT_BLOCK = st.builds(
    lambda names, values: block(
        [f"{n}: {v}".encode() for n, v in zip(names, values[: len(names)], strict=True)]
    ),
    LAYOUT,
    st.lists(VALUE, min_size=3, max_size=3),
)


@settings(max_examples=300)
@given(blocks=st.lists(LAYOUT_BLOCK | st.lists(LINE, max_size=5).map(block), max_size=10))
def test_any_blocks_read_one_after_another_give_what_nats_py_gives(
    blocks: list[bytes],
) -> None:
    """Layouts learnt from some blocks never change what the others read as."""
    reader = HeaderReader(NAMES)
    for raw in blocks:
        assert reader(raw) == wanted(raw)


class FakeClient:
    def new_inbox(self) -> str:
        return "_INBOX.test"


def test_raw_messages_become_deliveries_and_statuses_end_the_request() -> None:
    """A read's messages are buffered in order; a status between them is counted apart."""
    sub = PullSubscription(FakeClient(), stream="S", consumer="c", headers=NAMES)  # type: ignore[arg-type]
    sub._outstanding = 5
    headers = block([b"A: 1", b"X: y: z"])
    sub._on_raw(
        [
            (b"s.1", b"ack.1", b"one", headers),
            (b"s.2", b"ack.2", b"two", None),
            (b"s.0", b"", b"", b"NATS/1.0 100 Idle Heartbeat\r\n\r\n"),
        ]
    )
    assert sub._outstanding == 3
    sub._on_raw(
        [
            (b"s.3", b"ack.3", b"three", headers),
            (b"s.0", b"", b"", b"NATS/1.0 408 Request Timeout\r\n\r\n"),
            (b"s.4", b"ack.4", b"four", headers),
        ]
    )
    assert sub._outstanding == 0
    assert sub._error is None
    assert sub._buffer == [
        Delivery("s.1", b"ack.1", b"one", ("1", None, None, "y: z", None)),
        Delivery("s.2", b"ack.2", b"two", (None,) * len(NAMES)),
        Delivery("s.3", b"ack.3", b"three", ("1", None, None, "y: z", None)),
        Delivery("s.4", b"ack.4", b"four", ("1", None, None, "y: z", None)),
    ]
    sub._on_raw([(b"s.0", b"", b"", b"NATS/1.0 409 Consumer Deleted\r\n\r\n")])
    assert sub._error == "409 Consumer Deleted"
