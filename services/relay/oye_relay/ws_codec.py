"""WebSocket data frames (RFC 6455) in their common case, read and written in one step.

Nearly every frame the relay sees is a whole text message: FIN set, no fragment, no
extension, a few hundred bytes. websockets parses each through a chain of generators
and builds a ``Frame`` for it, and serializes each outgoing one the same way; for the
relay that is a large part of what forwarding a frame costs. :func:`scan` reads such a
frame's header straight from the received bytes, and :func:`encode` writes one.
Everything else (control frames, fragments, reserved bits, a wrong mask, a frame over
the size limit) is left to websockets: :func:`scan` only says where that frame ends, or
that websockets must take over. Pure functions, no I/O.
"""

from __future__ import annotations

import os
from typing import Final

try:
    from websockets.speedups import apply_mask  # websockets' C speedup, as it uses it
except ImportError:  # pragma: no cover - a websockets built without it
    from websockets.utils import apply_mask

#: What :func:`scan` found at the start of the buffer.
TEXT: Final = 0x1  # a whole text message: deliver it
BINARY: Final = 0x2  # a whole binary message: deliver it
OTHER: Final = 0  # a complete frame websockets must handle (control frame, fragment)
INCOMPLETE: Final = -1  # not all of the frame is there yet
FOREIGN: Final = -2  # a header websockets will refuse (or over max_size): it takes over

_FIN: Final = 0x80
_RESERVED: Final = 0x70
_OPCODE: Final = 0x0F
_MASK: Final = 0x80
#: The opcodes of RFC 6455 (continuation, text, binary, close, ping, pong).
CONTINUATION: Final = 0x0
CLOSE: Final = 0x8
PING: Final = 0x9
PONG: Final = 0xA
_KNOWN_OPCODES: Final = frozenset((CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG))


def scan(
    buffer: bytes | bytearray,
    start: int,
    *,
    masked: bool,
    max_size: int,
    extended: bool = False,
) -> tuple[int, int, int]:
    """Look at the frame that begins at ``start``: ``(kind, payload_start, end)``.

    ``masked``: whether frames must be masked (a server reads masked frames only).
    ``extended``: an extension was negotiated, so reserved bits may be set (such a
    frame is OTHER: its extension decodes it).
    ``kind`` is one of the constants above; ``payload_start`` and ``end`` delimit the
    (still masked) payload of TEXT, BINARY and OTHER frames, and ``end`` is where the
    next frame begins. For INCOMPLETE and FOREIGN both are 0.
    """
    available = len(buffer) - start
    if available < 2:
        return INCOMPLETE, 0, 0
    first = buffer[start]
    second = buffer[start + 1]
    opcode = first & _OPCODE
    reserved = first & _RESERVED
    if (
        (reserved and not extended)
        or opcode not in _KNOWN_OPCODES
        or bool(second & _MASK) is not masked
    ):
        return FOREIGN, 0, 0
    length = second & 0x7F
    header = 2
    if length == 126:
        header = 4
        if available < header:
            return INCOMPLETE, 0, 0
        length = int.from_bytes(buffer[start + 2 : start + 4])
    elif length == 127:
        header = 10
        if available < header:
            return INCOMPLETE, 0, 0
        length = int.from_bytes(buffer[start + 2 : start + 10])
    if length > max_size:
        return FOREIGN, 0, 0
    if masked:
        header += 4
    if available < header + length:
        return INCOMPLETE, 0, 0
    payload_start = start + header
    end = payload_start + length
    if first & _FIN and opcode in (TEXT, BINARY) and not reserved:
        return opcode, payload_start, end
    return OTHER, payload_start, end


def unmask(buffer: bytes | bytearray, payload_start: int, end: int) -> bytes:
    """The payload of a masked frame found by :func:`scan` (its mask precedes it)."""
    return apply_mask(
        memoryview(buffer)[payload_start:end], buffer[payload_start - 4 : payload_start]
    )


def encode(payload: bytes, *, text: bool, mask: bool) -> bytes:
    """One whole, unfragmented message as a frame; ``mask``: as a client must send it."""
    return encode_frame(TEXT if text else BINARY, payload, mask=mask)


def encode_frame(opcode: int, payload: bytes, *, mask: bool) -> bytes:
    """One final frame (FIN set) with ``opcode``: a data frame or a control frame."""
    length = len(payload)
    first = _FIN | opcode
    mask_bit = _MASK if mask else 0
    if length < 126:
        header = bytes((first, mask_bit | length))
    elif length < 0x10000:
        header = bytes((first, mask_bit | 126)) + length.to_bytes(2)
    else:
        header = bytes((first, mask_bit | 127)) + length.to_bytes(8)
    if not mask:
        return header + payload
    # A fresh unpredictable mask per frame, as RFC 6455 5.3 requires (and websockets does).
    key = os.urandom(4)
    return header + key + apply_mask(payload, key)


def refusal(
    buffer: bytes | bytearray, start: int, *, masked: bool, max_size: int
) -> tuple[int, str]:
    """Why the frame at ``start``, which :func:`scan` found FOREIGN, fails the connection:
    the close code and reason websockets gives for it (1002, or 1009 for its size)."""
    first = buffer[start]
    second = buffer[start + 1]
    opcode = first & _OPCODE
    if first & _RESERVED:
        return 1002, "reserved bits must be 0"
    if opcode not in _KNOWN_OPCODES:
        return 1002, f"invalid opcode: {opcode}"
    if bool(second & _MASK) is not masked:
        return 1002, "incorrect masking"
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(buffer[start + 2 : start + 4])
    elif length == 127:
        length = int.from_bytes(buffer[start + 2 : start + 10])
    return 1009, f"over size limit ({length} > {max_size} bytes)"


#: Close codes a peer may send (RFC 6455 7.4; 1004-1006 and 1015 are never sent).
_SENDABLE_CLOSE_CODES: Final = frozenset((1000, 1001, 1002, 1003, *range(1007, 1015)))


class BadClose(Exception):
    """A close frame that fails the connection: ``code`` and ``reason`` to fail it with."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def parse_close(payload: bytes) -> tuple[int, str]:
    """The code and reason of a received close frame (1005 when it has none); raises
    :class:`BadClose` for a payload RFC 6455 forbids."""
    if not payload:
        return 1005, ""
    if len(payload) == 1:
        raise BadClose(1002, "close frame too short")
    code = int.from_bytes(payload[:2])
    if code not in _SENDABLE_CLOSE_CODES and not 3000 <= code <= 4999:
        raise BadClose(1002, f"invalid status code: {code}")
    try:
        reason = payload[2:].decode()
    except UnicodeDecodeError as exc:
        raise BadClose(1007, f"{exc.reason} at position {exc.start}") from exc
    return code, reason


def close_payload(code: int, reason: str) -> bytes:
    """A close frame's payload; the reason is cut to what fits in a control frame."""
    encoded = reason.encode()[:123]
    return code.to_bytes(2) + encoded.decode(errors="ignore").encode()
