"""A fast echo CSMS for the benchmarks: answers every CALL at once with a CALLRESULT.

``python -m bench.csms [--port 0] [--compression]`` serves ``ws://127.0.0.1:PORT/ocpp/{id}``
(OCPP 1.6, 2.0.1 and 2.1) on uvloop and prints ``listening PORT`` when ready. A
BootNotification gets ``Accepted`` (so the relay sees a real accepted boot); every other
CALL gets ``{}``. It reads only the message id and the action, never the whole frame, so
the CSMS costs as little as it can and the figures show the proxy, not the CSMS.

Stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import uvloop
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

SUBPROTOCOLS = [Subprotocol("ocpp1.6"), Subprotocol("ocpp2.0.1"), Subprotocol("ocpp2.1")]
BOOT_ACCEPTED = '{"status":"Accepted","currentTime":"2025-06-01T12:00:00Z","interval":300}'
#: Accept queue for connection storms (the kernel caps it at net.core.somaxconn).
BACKLOG = 4096


def answer(message: str) -> str | None:
    """The CALLRESULT for a CALL (None for anything else), from the id and action only."""
    if not message.startswith("[2"):
        return None
    start = message.find('"') + 1
    end = message.find('"', start)
    if start == 0 or end < 0:
        return None
    message_id = message[start:end]
    action_start = message.find('"', end + 1) + 1
    action = message[action_start : message.find('"', action_start)]
    payload = BOOT_ACCEPTED if action == "BootNotification" else "{}"
    return f'[3,"{message_id}",{payload}]'


async def handle(connection: ServerConnection) -> None:
    try:
        async for message in connection:
            if isinstance(message, str) and (reply := answer(message)) is not None:
                await connection.send(reply)
    except ConnectionClosed:
        pass


async def run(port: int, *, compression: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with serve(
        handle,
        "127.0.0.1",
        port,
        subprotocols=SUBPROTOCOLS,
        compression="deflate" if compression else None,
        ping_interval=None,
        max_queue=None,
        backlog=BACKLOG,
    ) as server:
        print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
        await stop.wait()
        server.close(close_connections=False)  # a benchmark stops the CSMS last: just go


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--compression", action="store_true", help="accept permessage-deflate when offered"
    )
    args = parser.parse_args()
    uvloop.run(run(args.port, compression=args.compression))


if __name__ == "__main__":
    main()
