"""Writing a forwarded frame to a WebSocket without websockets' per-message machinery.

``Connection.send`` enters an async context manager for every message (state checks,
close deadlines, a drain): about half of what a forwarded frame costs to send. While a
connection is open and nothing waits in its write buffer, none of that is needed:
:func:`send` writes the frame at once, the way websockets' own ``broadcast`` does
(:func:`write`, which the relay's read callbacks also use while :func:`writable`).
Without an extension negotiated, the frame is encoded in one step
(:func:`oye_relay.ws_codec.encode`) instead of through websockets' ``Frame``.
Otherwise (closing, closed, a slow peer) :func:`send` falls back to ``Connection.send``,
which waits for the buffer to drain and raises ``ConnectionClosed`` exactly as before,
so backpressure and the close semantics are unchanged.
"""

from __future__ import annotations

from websockets.asyncio.connection import Connection
from websockets.protocol import Side, State

from oye_relay import ws_codec


def writable(connection: Connection) -> bool:
    """Whether a message may be written at once: the connection is open and its write
    buffer under the high-water mark (websockets' ``send`` would not wait either)."""
    return connection.protocol.state is State.OPEN and not connection.paused


def write(connection: Connection, message: str | bytes) -> None:
    """Write one text (``str``) or binary (``bytes``) message now (only when open)."""
    # The relay never sends fragmented messages, so no other send can be half-way through.
    protocol = connection.protocol
    text = isinstance(message, str)
    payload = message.encode() if isinstance(message, str) else message
    if protocol.extensions:  # compression: websockets encodes the frame
        if text:
            protocol.send_text(payload)
        else:
            protocol.send_binary(payload)
        connection.send_data()
        return
    # The transport reports socket errors through connection_lost, as for send().
    mask = protocol.side is Side.CLIENT
    connection.transport.write(ws_codec.encode(payload, text=text, mask=mask))


async def send(connection: Connection, message: str | bytes) -> None:
    """Send one text (``str``) or binary (``bytes``) message."""
    if connection.protocol.state is State.OPEN and not connection.transport.get_write_buffer_size():
        write(connection, message)
        return
    await connection.send(message)
