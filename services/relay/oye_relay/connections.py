"""What the relay keeps of an open WebSocket connection's opening handshake.

websockets keeps the handshake's request and response, with every header, for the
connection's life (``connection.request`` and ``connection.response``, and the received
one also in its parser's frame). The relay reads what it needs from them during the
handshake (:class:`~oye_relay.server.Handshake`), so past it the headers are only
memory: about 8 KiB per charger over its two legs.
"""

from __future__ import annotations

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers

#: In place of every open connection's handshake headers (nothing writes them after the
#: handshake; one shared object instead of an empty one per message).
NO_HEADERS = Headers()


def forget_handshake(connection: ServerConnection | ClientConnection) -> None:
    """Drop the headers of an open connection's handshake request and response.

    The request and response themselves stay: websockets tells the handshake from the
    frames after it by ``request`` / ``response`` being None, and its parser holds the
    one it received. Path and status stay for whoever logs them.
    """
    for message in (connection.request, connection.response):
        if message is not None:
            message.headers = NO_HEADERS
