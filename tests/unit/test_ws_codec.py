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


@pytest.mark.parametrize("opcode", [Opcode.CLOSE, Opcode.PING, Opcode.PONG, Opcode.TEXT])
@pytest.mark.parametrize("mask", [True, False], ids=["masked", "unmasked"])
def test_an_encoded_frame_of_any_opcode_is_what_websockets_reads(
    opcode: Opcode, mask: bool
) -> None:
    payload = (1000).to_bytes(2) + b"bye" if opcode is Opcode.CLOSE else b"data"
    frame = websockets_parse(ws_codec.encode_frame(opcode, payload, mask=mask), mask=mask)
    assert (frame.opcode, frame.data, frame.fin) == (opcode, payload, True)


def test_with_an_extension_a_frame_with_reserved_bits_is_for_it_to_decode() -> None:
    compressed = bytes([0xC1, 0x03]) + b"abc"  # FIN, RSV1, text: permessage-deflate's
    assert ws_codec.scan(compressed, 0, masked=False, max_size=100)[0] == ws_codec.FOREIGN
    assert ws_codec.scan(compressed, 0, masked=False, max_size=100, extended=True) == (
        ws_codec.OTHER,
        2,
        5,
    )
    plain = bytes([0x81, 0x03]) + b"abc"
    assert ws_codec.scan(plain, 0, masked=False, max_size=100, extended=True)[0] == ws_codec.TEXT


@pytest.mark.parametrize(
    ("wire", "refusal"),
    [
        (bytes([0xC1, 0x80, 0, 0, 0, 0]), (1002, "reserved bits must be 0")),
        (bytes([0x83, 0x80, 0, 0, 0, 0]), (1002, "invalid opcode: 3")),
        (bytes([0x81, 0x00]), (1002, "incorrect masking")),
        (bytes([0x81, 0xFE, 0x01, 0x00]), (1009, "over size limit (256 > 100 bytes)")),
        (bytes([0x81, 0xFF]) + (70_000).to_bytes(8), (1009, "over size limit (70000 > 100 bytes)")),
    ],
)
def test_the_refusal_of_a_foreign_frame_is_websockets_code_and_reason(
    wire: bytes, refusal: tuple[int, str]
) -> None:
    assert ws_codec.scan(wire, 0, masked=True, max_size=100)[0] == ws_codec.FOREIGN
    assert ws_codec.refusal(wire, 0, masked=True, max_size=100) == refusal


def test_a_close_frame_gives_its_code_and_reason_or_fails() -> None:
    assert ws_codec.parse_close(b"") == (1005, "")
    assert ws_codec.parse_close((4001).to_bytes(2) + "bye é".encode()) == (4001, "bye é")
    for payload, code in [
        (b"\x03", 1002),
        ((1005).to_bytes(2), 1002),  # never sent: it means "no code"
        ((2999).to_bytes(2), 1002),
        ((1000).to_bytes(2) + b"\xff", 1007),
    ]:
        with pytest.raises(ws_codec.BadClose) as bad:
            ws_codec.parse_close(payload)
        assert bad.value.code == code


def test_a_close_reason_is_cut_to_fit_a_control_frame_without_splitting_a_character() -> None:
    payload = ws_codec.close_payload(1001, "é" * 100)
    assert len(payload) <= 125
    assert ws_codec.parse_close(payload) == (1001, "é" * 61)
