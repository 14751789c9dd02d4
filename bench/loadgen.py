"""Simulated chargers: one load-generator process, driven by the harness.

``python -m bench.loadgen JOB.json`` runs one job (see :class:`Job`) and talks to the
harness one line at a time::

    stdout  ready        the chargers are connected and booted (a storm connects later)
    stdin   go START     begin at START, a time.monotonic() reading (one clock for every
                         process on the machine, so several generators start together)
    stdout  done         the result is in JOB.json's result file (see :func:`result_path`)
    stdin   close        close every connection and exit

Each charger is a plain ``websockets`` client (OCPP 1.6, no compression, as chargers
connect) on uvloop. Its CALLs are MeterValues of about 200 bytes; it answers every CALL
it receives with an empty CALLRESULT, as the injection benchmark needs. Latencies are
taken with ``time.perf_counter`` from just before the send to the answer's arrival.
"""

from __future__ import annotations

import asyncio
import collections
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from bench.http import HttpConnection, basic_auth

METER_VALUES = (
    '[2,"{}","MeterValues",{{"connectorId":1,"transactionId":1,"meterValue":[{{'
    '"timestamp":"2025-06-01T12:00:00Z","sampledValue":[{{"value":"1234.5",'
    '"measurand":"Energy.Active.Import.Register","unit":"Wh"}}]}}]}}]'
)
BOOT = (
    '[2,"{}","BootNotification",{{"chargePointVendor":"OYE-bench","chargePointModel":"loadgen"}}]'
)
OPEN_TIMEOUT = 120.0
#: How long an open-loop run waits for the last answers before it counts them as lost.
GRACE = 5.0


@dataclass
class Job:
    """What one generator does. ``kind``: open, closed, storm, idle or inject."""

    kind: str
    url: str = ""
    prefix: str = "CP"
    #: This generator's chargers are ``first .. first+count-1`` of ``total`` in the run.
    first: int = 0
    count: int = 1
    total: int = 1
    #: open: CALLs per second per charger; the run sends from START to START+duration and
    #: measures after ``warmup``.
    rate: float = 1.0
    duration: float = 1.0
    warmup: float = 0.0
    #: closed: CALLs per charger when set (instead of a duration); storm: handshakes in flight.
    calls: int | None = None
    concurrency: int = 200
    #: inject: the API and what to send; one HTTP connection per charger, sequential calls.
    api_host: str = "127.0.0.1"
    api_port: int = 0
    password: str = ""
    action: str = "GetConfiguration"
    payload: dict[str, Any] = field(default_factory=lambda: {"key": ["HeartbeatInterval"]})
    warmup_calls: int = 0

    def ids(self) -> list[str]:
        return [charger_id(self.prefix, i) for i in range(self.first, self.first + self.count)]


def charger_id(prefix: str, index: int) -> str:
    return f"{prefix}{index:05d}"


def result_path(job_path: Path) -> Path:
    return job_path.with_suffix(".result.json")


def head(message: str) -> tuple[int, str] | None:
    """(message type, message id) of an OCPP-J frame, read without parsing the rest."""
    try:
        kind = int(message[1 : message.index(",")])
        start = message.index('"') + 1
        end = message.index('"', start)
    except ValueError:
        return None
    return kind, message[start:end]


class Recorder:
    """Latencies (µs) of the CALLs sent inside the window, and what was sent and answered."""

    def __init__(self) -> None:
        self.window_start = float("inf")
        self.window_end = float("inf")
        self.latencies_us: list[int] = []
        self.sent = 0
        self.answered = 0
        self.completed_in_window = 0
        self.lags_us: list[int] = []

    def answer(self, sent: float, now: float) -> None:
        self.answered += 1
        if self.window_start <= sent <= self.window_end:
            self.latencies_us.append(round((now - sent) * 1e6))
        if self.window_start <= now <= self.window_end:
            self.completed_in_window += 1


class Charger:
    """One simulated charger: its socket, its CALLs in flight, and the task reading answers."""

    def __init__(self, charge_point_id: str, ws: ClientConnection, recorder: Recorder) -> None:
        self.charge_point_id = charge_point_id
        self.ws = ws
        self.recorder = recorder
        self.pending: dict[str, float] = {}
        self.waiter: asyncio.Future[None] | None = None
        self._next = 0
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, url: str, charge_point_id: str, recorder: Recorder) -> Charger:
        ws = await connect(
            f"{url}/{charge_point_id}",
            subprotocols=[Subprotocol("ocpp1.6")],
            compression=None,
            ping_interval=None,
            open_timeout=OPEN_TIMEOUT,
            close_timeout=10,
            max_queue=None,
            proxy=None,
        )
        return cls(charge_point_id, ws, recorder)

    def new_id(self) -> str:
        self._next += 1
        return str(self._next)

    async def send(self, template: str) -> asyncio.Future[None]:
        """Send a CALL now; the future is done when its answer arrives."""
        message_id = self.new_id()
        waiter = self.waiter = asyncio.get_running_loop().create_future()
        self.pending[message_id] = time.perf_counter()
        self.recorder.sent += 1
        await self.ws.send(template.format(message_id))
        return waiter

    async def boot(self) -> None:
        await (await self.send(BOOT))

    async def _read(self) -> None:
        ws = self.ws
        try:
            async for message in ws:
                now = time.perf_counter()
                found = head(message) if isinstance(message, str) else None
                if found is None:
                    continue
                kind, message_id = found
                if kind == 2:
                    await ws.send(f'[3,"{message_id}",{{}}]')
                    continue
                sent = self.pending.pop(message_id, None)
                if sent is not None:
                    self.recorder.answer(sent, now)
                    waiter = self.waiter
                    if waiter is not None and not waiter.done():
                        waiter.set_result(None)
        except ConnectionClosed:
            pass


class Generator:
    def __init__(self, job: Job) -> None:
        self.job = job
        self.recorder = Recorder()
        self.chargers: list[Charger] = []
        self.errors: collections.Counter[str] = collections.Counter()

    async def connect_all(self, ids: list[str], start: float | None = None) -> list[float]:
        """Connect and boot, ``concurrency`` handshakes at a time; each one's time from start."""
        gate = asyncio.Semaphore(self.job.concurrency)
        origin = time.perf_counter() if start is None else start
        times: list[float] = []

        async def one(charge_point_id: str) -> None:
            async with gate:
                try:
                    charger = await Charger.connect(self.job.url, charge_point_id, self.recorder)
                    self.chargers.append(charger)
                    async with asyncio.timeout(OPEN_TIMEOUT):
                        await charger.boot()
                except Exception as exc:  # counted and reported: a storm may lose some
                    self.errors[type(exc).__name__] += 1
                    return
                times.append(time.perf_counter() - origin)

        await asyncio.gather(*(one(cp) for cp in ids))
        return times

    async def open_loop(self, start: float) -> dict[str, Any]:
        job, recorder = self.job, self.recorder
        interval = 1.0 / job.rate
        end = start + job.duration
        recorder.window_start, recorder.window_end = start + job.warmup, end

        async def schedule(charger: Charger, offset: float) -> None:
            planned = start + offset
            while planned < end:
                delay = planned - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                lag = time.perf_counter() - planned
                if planned >= recorder.window_start:
                    recorder.lags_us.append(round(lag * 1e6))
                await charger.send(METER_VALUES)
                planned += interval

        await asyncio.gather(
            *(
                schedule(charger, (job.first + i) / job.total * interval)
                for i, charger in enumerate(self.chargers)
            )
        )
        await self._wait_answers(GRACE)
        return self._result()

    async def closed_loop(self, start: float) -> dict[str, Any]:
        job, recorder = self.job, self.recorder
        end = start + job.duration if job.calls is None else float("inf")
        if job.calls is None:
            recorder.window_start, recorder.window_end = start + job.warmup, end
        else:
            recorder.window_start = start

        async def loop(charger: Charger) -> None:
            done = 0
            while time.perf_counter() < end and (job.calls is None or done < job.calls):
                await (await charger.send(METER_VALUES))
                done += 1

        delay = start - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks = [asyncio.create_task(loop(charger)) for charger in self.chargers]
        limit = (job.duration if job.calls is None else 3600.0) + GRACE
        _, stuck = await asyncio.wait(tasks, timeout=limit)
        for task in stuck:
            task.cancel()
        self.errors["stuck"] += len(stuck)
        if job.calls is not None:
            recorder.window_end = time.perf_counter()
        return self._result()

    async def storm(self, start: float) -> dict[str, Any]:
        delay = start - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        times = await self.connect_all(self.job.ids(), start)
        return {
            "boot_ms": sorted(round(t * 1e3, 3) for t in times),
            "booted": len(times),
            "failed": self.job.count - len(times),
            "errors": dict(self.errors),
        }

    async def inject(self, start: float) -> dict[str, Any]:
        """HTTP POST /api/inject/{id}, sequentially on each of ``count`` connections."""
        job = self.job
        headers = {
            "Authorization": basic_auth("admin", job.password),
            "Content-Type": "application/json",
        }
        body = json.dumps({"action": job.action, "payload": job.payload}).encode()
        latencies: list[int] = []
        statuses: collections.Counter[int] = collections.Counter()
        total = job.calls or 1

        async def worker(charge_point_id: str) -> None:
            client = await HttpConnection.open(job.api_host, job.api_port)
            try:
                for n in range(job.warmup_calls + total):
                    sent = time.perf_counter()
                    response = await client.request(
                        "POST", f"/api/inject/{charge_point_id}", body, headers
                    )
                    elapsed = time.perf_counter() - sent
                    if n >= job.warmup_calls:
                        statuses[response.status] += 1
                        if response.status == 200:
                            latencies.append(round(elapsed * 1e6))
            finally:
                await client.close()

        delay = start - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        began = time.perf_counter()
        await asyncio.gather(*(worker(cp) for cp in job.ids()))
        return {
            "latencies_us": latencies,
            "statuses": {str(k): v for k, v in statuses.items()},
            "seconds": time.perf_counter() - began,
        }

    async def _wait_answers(self, seconds: float) -> None:
        deadline = time.perf_counter() + seconds
        while any(c.pending for c in self.chargers) and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # many chargers' answers: polling them is simplest

    def _result(self) -> dict[str, Any]:
        r = self.recorder
        window = r.window_end - r.window_start
        lost = sum(
            1
            for charger in self.chargers
            for sent in charger.pending.values()
            if r.window_start <= sent <= r.window_end
        )
        return {
            "latencies_us": r.latencies_us,
            "lags_us": r.lags_us,
            "sent": r.sent,
            "answered": r.answered,
            "completed_in_window": r.completed_in_window,
            "window": window,
            "lost": lost,
            "errors": dict(self.errors),
        }

    async def close(self) -> None:
        async def close_one(charger: Charger) -> None:
            try:
                await charger.ws.close()
            except Exception as exc:  # a peer that is gone already: counted, not raised
                self.errors[type(exc).__name__] += 1
            await charger.reader

        gate = asyncio.Semaphore(1000)

        async def gated(charger: Charger) -> None:
            async with gate:
                await close_one(charger)

        await asyncio.gather(*(gated(c) for c in self.chargers))


async def _lines() -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def run(job: Job, job_path: Path) -> None:
    generator = Generator(job)
    stdin = await _lines()
    if job.kind in ("open", "closed", "idle"):
        await generator.connect_all(job.ids())
        if generator.errors:
            raise SystemExit(f"loadgen: chargers failed to connect: {dict(generator.errors)}")
    print("ready", flush=True)
    command = (await stdin.readline()).decode().split()
    if command[:1] == ["go"]:
        # time.monotonic() and time.perf_counter() are one clock on Linux (CLOCK_MONOTONIC).
        start = float(command[1]) - time.monotonic() + time.perf_counter()
        work = {
            "open": generator.open_loop,
            "closed": generator.closed_loop,
            "storm": generator.storm,
            "inject": generator.inject,
        }.get(job.kind)
        result = await work(start) if work is not None else {}
        result_path(job_path).write_text(json.dumps(result))
        print("done", flush=True)
        await stdin.readline()  # "close", or EOF when the harness is gone
    await generator.close()


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m bench.loadgen JOB.json")
    job_path = Path(sys.argv[1])
    uvloop.run(run(Job(**json.loads(job_path.read_text())), job_path))


if __name__ == "__main__":
    main()
