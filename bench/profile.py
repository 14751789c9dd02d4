"""Sampling a service under load with py-spy, and reading where its time went.

py-spy is not a dependency of the project: ``--profile`` needs it in the virtual
environment (``.venv/bin/pip install py-spy``) and permission to attach (root, or
``kernel.yama.ptrace_scope=0``). It records collapsed stacks ("raw" format: one line per
distinct stack, frames joined by ``;``, then the sample count), which
:func:`summarize` turns into the figures ``docs/PERFORMANCE.md`` quotes: the share of
samples spent in each function itself (self) and under it (inclusive), and in each
source file.
"""

from __future__ import annotations

import asyncio
import collections
import math
import re
import shutil
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

RATE = 250
TOP = 15
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


class ProfileError(RuntimeError):
    """py-spy is missing or could not sample the process."""


def py_spy() -> str:
    found = Path(sys.executable).parent / "py-spy"
    if found.exists():
        return str(found)
    on_path = shutil.which("py-spy")
    if on_path is None:
        raise ProfileError("--profile needs py-spy: .venv/bin/pip install py-spy")
    return on_path


def start(pid: int, seconds: float, output: Path) -> Awaitable[None]:
    """Sample ``pid`` for ``seconds`` into ``output.txt`` (collapsed stacks); await to finish."""
    return asyncio.ensure_future(_record(pid, seconds, output.with_suffix(".txt")))


async def _record(pid: int, seconds: float, output: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        py_spy(),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, math.ceil(seconds))),
        "--rate",
        str(RATE),
        "--format",
        "raw",
        "--nonblocking",
        "--output",
        str(output),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await process.communicate()
    if process.returncode != 0:
        raise ProfileError(f"py-spy failed: {stderr.decode(errors='replace')[-500:]}")


def short_file(path: str) -> str:
    """A source path from the package on: ``/x/site-packages/websockets/frames.py`` ->
    ``websockets/frames.py``; ``.../services/relay/oye_relay/session.py`` ->
    ``oye_relay/session.py``."""
    for marker in ("site-packages/", "/lib/python3.", "services/relay/", "services/logger/"):
        if marker in path:
            tail = path.split(marker, 1)[1]
            return tail.split("/", 1)[1] if marker == "/lib/python3." else tail
    for marker in ("services/inject-api/", "shared/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path  # py-spy's raw output already names most files from the package on


def frame_name(frame: str) -> tuple[str, str]:
    """(``file:function``, ``file``) of one py-spy frame ``function (path:line)``."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip(), "?"
    file = short_file(match["file"])
    return f"{file}:{match['function']}", file


#: Where a relay sample belongs: the first rule whose text is in the sample's stack wins
#: (the order matters: publishing is checked before the session code that calls it).
RELAY_AREAS = (
    (
        "publish to NATS (nats-py, publisher)",
        (
            "nats/aio/client.py",
            "oye_relay/publisher.py",
            "oye_relay/wire.py",
            "oye_relay/nats_commands.py",
        ),
    ),
    ("frame metadata (ids, time, subject, headers)", ("oye_relay/traffic.py:TrafficTap.frame",)),
    ("metrics", ("oye_relay/metrics.py", "prometheus_client/")),
    ("parse the frame (JSON)", ("frames.py:parse_frame",)),
    (
        "websockets: send (and the socket write)",
        (
            "websockets/asyncio/connection.py:Connection.send",
            "oye_relay/legs.py:WebSocketLeg.write",
            "oye_relay/legs.py:WebSocketLeg.send",
        ),
    ),
    # The session handles most frames inside the read callback (oye_relay/flow.py):
    # that is its own time, not websockets'.
    ("session bookkeeping (relay code)", ("oye_relay/flow.py",)),
    (
        "websockets: receive (socket read, frame parsing)",
        (
            "_read_ready",
            "Connection.recv",
            "Connection.__aiter__",
            "Assembler.get",
            "oye_relay/legs.py:WebSocketLeg.data_received",
        ),
    ),
    ("session bookkeeping (relay code)", ("oye_relay/",)),
    ("websockets: other (keepalive, handshakes)", ("websockets/",)),
)


def areas(raw: str, rules: tuple[tuple[str, tuple[str, ...]], ...]) -> list[list[Any]]:
    """Share of samples (percent) per area; a sample matching no rule is "event loop, other"."""
    counts: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        names = ";".join(frame_name(f)[0] for f in stack.split(";"))
        area = next(
            (name for name, needles in rules if any(n in names for n in needles)),
            "event loop, other",
        )
        counts[area] += int(count_text)
        samples += int(count_text)
    return [[name, round(100 * n / samples, 1)] for name, n in counts.most_common()]


def summarize(raw: str, *, top: int = TOP) -> dict[str, Any]:
    """Self and inclusive shares (percent of samples) per function, and self per file."""
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    per_file: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame_name(f) for f in stack.split(";") if not f.startswith("process ")]
        frames = [f for f in frames if not f[0].startswith("thread ")]
        if not frames:
            continue
        samples += count
        leaf, leaf_file = frames[-1]
        self_time[leaf] += count
        per_file[leaf_file] += count
        for name in {name for name, _ in frames}:
            inclusive[name] += count

    def share(counter: collections.Counter[str]) -> list[list[Any]]:
        return [[name, round(100 * n / samples, 1)] for name, n in counter.most_common(top)]

    return {
        "samples": samples,
        "self": share(self_time) if samples else [],
        "inclusive": share(inclusive) if samples else [],
        "files": share(per_file) if samples else [],
    }


def summarize_file(
    path: Path,
    *,
    seconds: float | None = None,
    rules: tuple[tuple[str, tuple[str, ...]], ...] | None = None,
) -> dict[str, Any]:
    raw = path.read_text()
    summary = summarize(raw)
    if rules:
        summary["areas"] = areas(raw, rules)
    if seconds:
        # py-spy samples only when the process runs Python: busy = samples taken / possible.
        summary["busy"] = round(summary["samples"] / (RATE * seconds), 2)
    summary["raw"] = str(path)
    return summary
