"""oye_relay.ws_codec: frames read and written as websockets reads and writes them."""

from __future__ import annotations

from collections.abc import Generator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from oye_relay import ws_codec

pytestmark = pytest.mark.unit

LENGTHS = [0, 1, 125, 126, 127, 65_535, 65_536, 70_000]


def websockets_parse(data: bytes, *, mask: bool) -> Frame:
    """The frame websockets' own parser reads from ``data``."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser: Generator[None, None, Frame] = Frame.parse(reader.read_exact, mask=mask)
    try:
        next(parser)
    except StopIteration as done:
        frame: Frame = done.value
        return frame
    raise AssertionError("websockets wanted more data")


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("text", [True, False], ids=["text", "binary"])
@pytest.mark.parametrize("mask", [True, False], ids=["masked", "unmasked"])
def test_an_encoded_message_is_what_websockets_reads(length: int, text: bool, mask: bool) -> None:
    payload = bytes(i % 251 for i in range(length))
    frame = websockets_parse(ws_codec.encode(payload, text=text, mask=mask), mask=mask)
    assert frame.opcode is (Opcode.TEXT if text else Opcode.BINARY)
    assert frame.fin
    assert frame.data == payload


def test_each_masked_frame_gets_its_own_mask() -> None:
    frames = {ws_codec.encode(b"same payload", text=True, mask=True) for _ in range(20)}
    assert len(frames) == 20


frames_websockets_writes = st.one_of(
    st.builds(
        Frame,
        st.sampled_from([Opcode.TEXT, Opcode.BINARY, Opcode.CONT]),
        st.binary(max_size=70_000),
        st.booleans(),
    ),
    st.builds(
        Frame,
        st.sampled_from([Opcode.PING, Opcode.PONG, Opcode.CLOSE]),
        st.binary(max_size=125),
    ),
)


@given(frame=frames_websockets_writes, masked=st.booleans(), before=st.binary(max_size=8))
def test_scan_finds_each_frame_websockets_writes(frame: Frame, masked: bool, before: bytes) -> None:
    wire = frame.serialize(mask=masked)
    buffer = before + wire + b"\x81"  # another frame's first byte follows
    kind, payload_start, end = ws_codec.scan(buffer, len(before), masked=masked, max_size=2**20)
    whole_message = frame.fin and frame.opcode in (Opcode.TEXT, Opcode.BINARY)
    assert kind == (frame.opcode.value if whole_message else ws_codec.OTHER)
    assert end == len(before) + len(wire)
    if masked:
        assert ws_codec.unmask(buffer, payload_start, end) == frame.data
    else:
        assert buffer[payload_start:end] == frame.data


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("masked", [True, False], ids=["masked", "unmasked"])
def test_a_frame_cut_anywhere_is_incomplete(length: int, masked: bool) -> None:
    wire = Frame(Opcode.TEXT, b"x" * length).serialize(mask=masked)
    cuts = range(len(wire)) if length < 200 else [0, 1, 2, 3, 4, 9, 13, len(wire) - 1]
    for cut in cuts:
        assert ws_codec.scan(wire[:cut], 0, masked=masked, max_size=2**20) == (
            ws_codec.INCOMPLETE,
            0,
            0,
        )


@pytest.mark.parametrize(
    "wire",
    [
        bytes([0x81, 0x02]) + b"hi",  # a server receives an unmasked frame
        bytes([0xC1, 0x82, 1, 2, 3, 4, 5, 6]),  # reserved bit 1 without an extension
        bytes([0x83, 0x80, 1, 2, 3, 4]),  # opcode 3 is reserved
        bytes([0x81, 0xFF]) + (2**40).to_bytes(8) + b"mask",  # over max_size
        bytes([0x81, 0xFE, 0x04, 0x01]),  # 1,025 bytes announced: over max_size at once
    ],
    ids=["unmasked", "reserved-bit", "reserved-opcode", "64-bit-length", "header-only"],
)
def test_a_header_websockets_would_refuse_is_left_to_it(wire: bytes) -> None:
    assert ws_codec.scan(wire, 0, masked=True, max_size=1024) == (ws_codec.FOREIGN, 0, 0)


def test_a_client_refuses_a_masked_frame_too() -> None:
    wire = Frame(Opcode.TEXT, b"hi").serialize(mask=True)
    assert ws_codec.scan(wire, 0, masked=False, max_size=1024)[0] == ws_codec.FOREIGN


def test_a_message_of_exactly_max_size_is_whole() -> None:
    wire = Frame(Opcode.BINARY, b"x" * 1024).serialize(mask=True)
    assert ws_codec.scan(wire, 0, masked=True, max_size=1024)[0] == ws_codec.BINARY
