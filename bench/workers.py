"""Driving load-generator processes (:mod:`bench.loadgen`) from the harness.

A :class:`Workers` group starts one process per job, waits until every one is ready,
tells them all to begin at the same moment, collects their results, and closes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from bench.loadgen import Job, result_path

#: How far ahead of "now" the common start is set, so every process is listening.
LEAD = 0.3
_names = itertools.count()


class WorkerError(RuntimeError):
    """A load generator failed; the message ends with the tail of its log."""


def split(job: Job, processes: int) -> list[Job]:
    """The job for each of ``processes`` generators: the chargers shared out in blocks."""
    processes = max(1, min(processes, job.count))
    size, extra = divmod(job.count, processes)
    jobs, first = [], job.first
    for n in range(processes):
        count = size + (1 if n < extra else 0)
        jobs.append(dataclasses.replace(job, first=first, count=count))
        first += count
    return jobs


class Worker:
    """One load-generator process and its line protocol."""

    def __init__(self, job: Job, workdir: Path) -> None:
        name = f"loadgen-{next(_names)}"
        self.job = job
        self.job_path = workdir / f"{name}.json"
        self.log_path = workdir / f"{name}.log"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, limit: float) -> None:
        self.job_path.write_text(json.dumps(dataclasses.asdict(self.job)))
        with self.log_path.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.loadgen",
                str(self.job_path),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )
        await self._expect("ready", limit)

    async def go(self, start: float) -> None:
        await self._send(f"go {start!r}")

    async def result(self, limit: float) -> dict[str, Any]:
        await self._expect("done", limit)
        result: dict[str, Any] = json.loads(result_path(self.job_path).read_text())
        return result

    async def close(self, limit: float = 60.0) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ConnectionError):
            await self._send("close")
        try:
            async with asyncio.timeout(limit):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()

    async def _send(self, line: str) -> None:
        assert self.process is not None
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()

    async def _expect(self, word: str, limit: float) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        try:
            async with asyncio.timeout(limit):
                line = await self.process.stdout.readline()
        except TimeoutError:
            raise WorkerError(f"no {word!r} within {limit:.0f} s{self._tail()}") from None
        if line.decode().strip() != word:
            await self.process.wait()
            raise WorkerError(f"expected {word!r}, got {line[:200]!r}{self._tail()}")

    def _tail(self) -> str:
        try:
            text = self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""
        return f"; its log ends:\n{text}" if text else ""


class Workers:
    """Several generators that begin together."""

    def __init__(self, workers: Sequence[Worker]) -> None:
        self.workers = list(workers)

    async def run(self, limit: float) -> list[dict[str, Any]]:
        """Start them all at one moment; their results once every one is done."""
        start = time.monotonic() + LEAD
        for worker in self.workers:
            await worker.go(start)
        return list(await asyncio.gather(*(w.result(limit) for w in self.workers)))


@contextlib.asynccontextmanager
async def workers(
    jobs: Sequence[Job], workdir: Path, *, ready_limit: float = 300.0
) -> AsyncIterator[Workers]:
    """Generators for ``jobs``, connected and ready; closed on the way out."""
    group = [Worker(job, workdir) for job in jobs]
    try:
        await asyncio.gather(*(w.start(ready_limit) for w in group))
        yield Workers(group)
    finally:
        await asyncio.gather(*(w.close() for w in group), return_exceptions=True)


def merged(results: Sequence[dict[str, Any]], key: str) -> list[Any]:
    """One list of every generator's ``key`` (latency samples, boot times)."""
    return [item for result in results for item in result.get(key, [])]


def total(results: Sequence[dict[str, Any]], key: str) -> float:
    return float(sum(result.get(key, 0) for result in results))
