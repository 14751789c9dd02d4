"""Where the relay's memory per connected charger goes, by the code that allocated it.

``python -m bench.memory [--chargers 1000] [--top 25]`` runs a nats-server of its own, the
echo CSMS (:mod:`bench.csms`) and the relay in this process with ``tracemalloc`` on;
chargers connect and boot from another process (plain websockets clients, 50
handshakes in flight) and stay connected. The allocations still held once all have
booted, per charger, are printed grouped by the innermost frame of the relay's own code
on their stack (``oye_relay``, ``oye_shared``) and by the package that made the object
(websockets, pydantic, nats, the standard library): what a change to a leg or a
session is worth, before running the capacity scenario for VmRSS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import subprocess
import sys
import tempfile
import tracemalloc
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import uvloop

from bench.stack import free_port, start_csms
from oye_cli.nats_server import NatsServer

#: Frames of tracemalloc tracebacks kept: deep enough to reach the relay's own code.
TRACEBACK_FRAMES = 10
#: Handshakes in flight: fewer than the capacity scenario's 200, since tracemalloc makes the
#: relay several times slower and its NATS requests during a handshake would time out.
IN_FLIGHT = 50
OPEN_TIMEOUT = 60
OWN_CODE = ("/oye_relay/", "/oye_shared/")


@dataclass(frozen=True, slots=True)
class Held:
    """Memory still allocated from one call stack: ``frames`` oldest first, as
    ``(filename, lineno)``."""

    size: int
    count: int
    frames: Sequence[tuple[str, int]]


def where(frames: Sequence[tuple[str, int]]) -> str:
    """``module.py:line`` of the innermost frame of our own code, else ``elsewhere``."""
    for filename, lineno in reversed(frames):
        if any(part in filename for part in OWN_CODE):
            return f"{Path(filename).name}:{lineno}"
    return "elsewhere"


def made_by(frames: Sequence[tuple[str, int]]) -> str:
    """The package of the innermost frame (the code that made the object)."""
    if not frames:
        return "C"
    filename = frames[-1][0]
    if any(part in filename for part in OWN_CODE):
        return "ours"
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0]
    return "stdlib"


def made_at(frames: Sequence[tuple[str, int]]) -> str:
    """``package/module.py:line`` of the innermost frame: the line that made the object."""
    if not frames:
        return "C"
    filename, lineno = frames[-1]
    if "site-packages/" in filename:
        filename = filename.split("site-packages/", 1)[1]
    elif "/python3" in filename:
        filename = "stdlib/" + filename.rsplit("/", 1)[1]
    else:
        filename = Path(filename).name
    return f"{filename}:{lineno}"


def breakdown(held: Iterable[Held], chargers: int) -> dict[str, list[tuple[str, float, float]]]:
    """Bytes and objects per charger: by our module, by our line, by the maker's package
    and by the maker's line, largest first (each as ``(name, bytes, objects)``)."""
    sizes: dict[str, Counter[str]] = {
        "module": Counter(),
        "line": Counter(),
        "maker": Counter(),
        "made at": Counter(),
    }
    counts: dict[str, Counter[str]] = {key: Counter() for key in sizes}
    for entry in held:
        line = where(entry.frames)
        keys = {
            "module": f"{line.split(':')[0]} ({made_by(entry.frames)})",
            "line": line,
            "maker": made_by(entry.frames),
            "made at": made_at(entry.frames),
        }
        for kind, key in keys.items():
            sizes[kind][key] += entry.size
            counts[kind][key] += entry.count
    return {
        kind: [
            (key, size / chargers, counts[kind][key] / chargers)
            for key, size in sizes[kind].most_common()
        ]
        for kind in sizes
    }


# Everything below runs the processes and reads tracemalloc.


async def _chargers(url: str, count: int) -> None:
    """The charger process: connect and boot ``count`` chargers (``url`` ends with their
    ids' prefix), say so, hold them until stdin closes."""
    import websockets  # only in the charger process

    gate = asyncio.Semaphore(IN_FLIGHT)
    held = []

    async def one(index: int) -> None:
        async with gate:
            connection = await websockets.connect(
                f"{url}{index:05d}",
                subprotocols=[websockets.Subprotocol("ocpp1.6")],
                compression=None,
                ping_interval=None,
                open_timeout=OPEN_TIMEOUT,
            )
            boot = {"chargePointVendor": "bench", "chargePointModel": "memory"}
            await connection.send(json.dumps([2, "boot", "BootNotification", boot]))
            await connection.recv()
        held.append(connection)

    await asyncio.gather(*(one(index) for index in range(count)))
    print(f"booted {len(held)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


@contextlib.asynccontextmanager
async def _charger_process(url: str, count: int) -> AsyncIterator[None]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.memory",
        "--charger-process",
        url,
        str(count),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stdin is not None
    try:
        line = await process.stdout.readline()
        if not line.startswith(b"booted"):
            raise RuntimeError(f"the chargers did not boot: {line!r}")
        yield
    finally:
        process.stdin.close()
        await process.wait()


async def _settled(*, every: float = 0.5, at_most: float = 15.0) -> None:
    """Wait until the relay's allocations stop shrinking: the frames of the boots still
    queued for NATS and the handshakes' leftovers are not what a charger keeps."""
    previous = tracemalloc.get_traced_memory()[0]
    for _ in range(int(at_most / every)):
        await asyncio.sleep(every)
        current = tracemalloc.get_traced_memory()[0]
        if current >= previous:
            return
        previous = current


def _held(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot) -> list[Held]:
    return [
        Held(
            size=stat.size_diff,
            count=stat.count_diff,
            frames=[(frame.filename, frame.lineno) for frame in stat.traceback],
        )
        for stat in after.compare_to(before, "traceback")
    ]


async def measure(chargers: int) -> dict[str, list[tuple[str, float, float]]]:
    from oye_relay.main import run as run_relay  # the relay, in this process
    from oye_shared.settings import load_settings

    workdir = Path(tempfile.mkdtemp(prefix="oye-memory-"))
    csms, csms_port = await start_csms(workdir, compression=False)
    try:
        with NatsServer(workdir / "nats") as nats:
            settings = load_settings(
                nats_url=nats.url,
                data_dir=workdir / "data",
                bind_host="127.0.0.1",
                ocpp_port=free_port(),
                http_port=free_port(),
                metrics_port=0,
                logger_metrics_port=0,
                relay_id="memory",
                upstream_url=f"ws://127.0.0.1:{csms_port}",
                max_connections_per_address=100_000,
            )
            stop, started = asyncio.Event(), asyncio.Event()
            relay = asyncio.create_task(run_relay(settings, stop=stop, started=started))
            await started.wait()
            url = f"ws://127.0.0.1:{settings.ocpp_port}/ocpp"
            try:
                # A few chargers first, so what every relay makes once is not counted.
                async with _charger_process(f"{url}/warm-up-", 20):
                    gc.collect()
                    tracemalloc.start(TRACEBACK_FRAMES)
                    before = tracemalloc.take_snapshot()
                    async with _charger_process(f"{url}/memory-", chargers):
                        await _settled()
                        gc.collect()
                        after = tracemalloc.take_snapshot()
                    tracemalloc.stop()
            finally:
                stop.set()
                await relay
    finally:
        await csms.stop()
    return breakdown(_held(before, after), chargers)


def report(result: dict[str, list[tuple[str, float, float]]], top: int) -> str:
    total = sum(size for _, size, _ in result["maker"])
    lines = [f"Held per charger: {total / 1024:.1f} KiB of Python allocations"]
    titles = {
        "maker": "made by",
        "module": "by our module",
        "line": "by our line",
        "made at": "made at",
    }
    for kind, title in titles.items():
        lines += ["", f"{title:48} {'bytes':>8} {'objects':>8}"]
        lines += [f"{key:48} {size:8.0f} {count:8.2f}" for key, size, count in result[kind][:top]]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--charger-process":
        uvloop.run(_chargers(sys.argv[2], int(sys.argv[3])))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chargers", type=int, default=1000)
    parser.add_argument("--top", type=int, default=25, help="rows per table")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    print(report(uvloop.run(measure(args.chargers)), args.top))


if __name__ == "__main__":
    main()
