"""A misbehaving charger in a process of its own, while a test measures another charger.

Run in the test's process (and event loop), a flood of 10,000 CALLs a second would mostly
measure the test's own sending: the relay shares that loop. Here the misbehaviour runs in a
child process; the test reads ``started`` when it begins and one JSON report line when it
is over, and measures its own charger's round trips in between (:class:`HostilePeer`).

    python hostile_peer.py flood URL RATE
    python hostile_peer.py connections URL COUNT          (ids URL-0 ... URL-<COUNT-1>)
    python hostile_peer.py stalled-handshakes HOST PORT PATH COUNT
    python hostile_peer.py huge-message URL BYTES FRAGMENTS

This file imports only the standard library and websockets, so it runs as a script.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

OCPP16 = [Subprotocol("ocpp1.6")]
#: A whole misbehaviour is over well within this (the test's own timeout is longer).
DEADLINE = 60.0


def started() -> None:
    print("started", flush=True)


async def flood(url: str, rate: float) -> dict[str, Any]:
    """Heartbeat CALLs at ``rate`` a second (each batch catches up with the clock) until
    the relay closes the connection; every answer counted."""
    loop = asyncio.get_running_loop()
    report: dict[str, Any] = {"sent": 0, "results": 0, "errors": Counter()}
    async with connect(url, subprotocols=OCPP16) as charger:
        began = loop.time()
        started()

        async def send() -> None:
            with contextlib.suppress(ConnectionClosed):
                while True:
                    due = int((loop.time() - began) * rate)
                    while report["sent"] < due:
                        await charger.send(f'[2,"f{report["sent"]}","Heartbeat",{{}}]')
                        report["sent"] += 1
                    await asyncio.sleep(0.001)  # pacing the flood, not waiting for anything

        sender = asyncio.create_task(send())
        try:
            async for message in charger:
                answer = json.loads(message)
                if answer[0] == 3:
                    report["results"] += 1
                else:
                    report["errors"][f"{answer[2]}: {answer[3]}"] += 1
        except ConnectionClosed:
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        report["seconds"] = loop.time() - began
    report["code"] = charger.close_code
    return report


async def connections(url: str, count: int) -> dict[str, Any]:
    """``count`` chargers of one address at once; the admitted ones held until all tried."""
    started()

    async def attempt(n: int) -> ClientConnection | int:
        try:
            return await connect(f"{url}-{n}", subprotocols=OCPP16, open_timeout=DEADLINE)
        except InvalidStatus as refused:
            return refused.response.status_code

    outcomes = await asyncio.gather(*(attempt(n) for n in range(count)), return_exceptions=True)
    admitted = [o for o in outcomes if isinstance(o, ClientConnection)]
    for charger in admitted:
        await charger.close()
    return {
        "admitted": len(admitted),
        "statuses": Counter(o for o in outcomes if isinstance(o, int)),
        "failures": [repr(o) for o in outcomes if isinstance(o, BaseException)],
    }


async def stalled_handshakes(host: str, port: int, path: str, count: int) -> dict[str, Any]:
    """``count`` handshakes that send half a request and never the rest; what each got
    back before the server closed it."""
    loop = asyncio.get_running_loop()
    sockets = [await asyncio.open_connection(host, port) for _ in range(count)]
    for n, (_, writer) in enumerate(sockets):
        writer.write(f"GET {path}-{n} HTTP/1.1\r\nHost: {host}\r\n".encode())  # no end
        await writer.drain()
    began = loop.time()
    started()
    answers = await asyncio.gather(*(_until_closed(reader) for reader, _ in sockets))
    for _, writer in sockets:
        writer.close()
    return {
        "answers": Counter(a.decode(errors="replace") for a in answers),
        "seconds": loop.time() - began,
    }


async def _until_closed(reader: asyncio.StreamReader) -> bytes:
    """What the server sent before it closed the connection."""
    try:
        return await reader.read()
    except ConnectionResetError:
        return b"(reset)"


async def huge_message(url: str, size: int, fragments: int) -> dict[str, Any]:
    """One text message of ``size`` bytes, in ``fragments`` fragments sent 50 ms apart
    (one frame if 1); the close code the relay answers with."""
    head, tail = '[2,"big","DataTransfer",{"vendorId":"x","data":"', '"}]'
    body = "x" * (size - len(head) - len(tail))
    step = -(-len(body) // fragments)
    async with connect(url, subprotocols=OCPP16, max_size=None) as charger:
        started()

        async def pieces() -> AsyncIterator[str]:
            yield head + body[:step]
            for start in range(step, len(body), step):
                await asyncio.sleep(0.05)  # pacing the fragments, not waiting for anything
                yield body[start : start + step]
            yield tail

        with contextlib.suppress(ConnectionClosed):
            await charger.send(head + body + tail if fragments == 1 else pieces())
        with contextlib.suppress(ConnectionClosed):
            await charger.recv()
    return {"code": charger.close_code}


async def main(mode: str, *args: str) -> dict[str, Any]:
    async with asyncio.timeout(DEADLINE):
        if mode == "flood":
            return await flood(args[0], float(args[1]))
        if mode == "connections":
            return await connections(args[0], int(args[1]))
        if mode == "stalled-handshakes":
            return await stalled_handshakes(args[0], int(args[1]), args[2], int(args[3]))
        if mode == "huge-message":
            return await huge_message(args[0], int(args[1]), int(args[2]))
    raise SystemExit(f"unknown mode {mode!r}")


class HostilePeer:
    """This script in a child process: ``async with HostilePeer("flood", url, "10000") as
    peer``; :meth:`running` is true from its ``started`` until its report, in ``report``."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.report: dict[str, Any] = {}
        self._process: asyncio.subprocess.Process | None = None
        self._report_line: asyncio.Task[bytes] | None = None

    async def __aenter__(self) -> HostilePeer:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(Path(__file__)),
            *self.args,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self._process.stdout is not None
        line = await self._process.stdout.readline()
        assert line == b"started\n", f"the hostile peer did not start: {line!r}"
        self._report_line = asyncio.create_task(self._process.stdout.readline())
        return self

    def running(self) -> bool:
        return self._report_line is not None and not self._report_line.done()

    async def finished(self) -> dict[str, Any]:
        """Its report, once it is over."""
        assert self._report_line is not None
        line = await self._report_line
        assert line, "the hostile peer ended without a report"
        self.report = json.loads(line)
        return self.report

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        process = self._process
        if process is None:
            return
        if process.returncode is None and kind is not None:
            process.kill()
        if self._report_line is not None and not self._report_line.done():
            self._report_line.cancel()
        await process.wait()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(*sys.argv[1:]))), flush=True)
