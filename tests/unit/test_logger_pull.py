"""The logger's header parsing gives what nats-py's would, fast path or not."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nats.aio.client import Client

from oye_logger.pull import parse_header_block, parse_header_lines
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
