"""The processes under test: our own nats-server, the echo CSMS, and the stack.

The relay, the inject-api and the logger run as real processes (``oye relay``,
``oye inject-api``, ``oye logger``) configured only through ``OYE_*`` variables, exactly as
an operator runs them (with ``relays`` > 1, that many relay processes sharing the port, as
``oye up`` runs them for ``OYE_RELAY_PROCESSES``); the nats-server is our own, on a free
port (never the machine's).
:class:`Stack` starts them, proves them ready end to end (a probe charger boots through
the relay and answers an injection, and its frames reach the log), and reads what the
benchmarks need from ``/proc``: resident memory, CPU time, open files.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import secrets
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from bench.http import HttpConnection, HttpError, basic_auth
from bench.loadgen import head
from oye_cli.nats_server import NatsServer
from oye_cli.relays import relay_processes

#: Our listening ports come from here: below the range the test suite takes its ports
#: from (20000-31999) and below Linux's ephemeral range, so neither collides with us.
PORT_RANGE = range(15_000, 20_000)
ADMIN_PASSWORD = "bench-only-admin-password"
STOP_DEADLINE = 20.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class StackError(RuntimeError):
    """A process of the stack did not start or is not ready; the message says which."""


def free_port() -> int:
    for port in random.sample(PORT_RANGE, len(PORT_RANGE)):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise StackError("no free port between 15000 and 19999")


def rss_kib(pid: int) -> int:
    """Resident memory (VmRSS) of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise StackError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_pressure_us() -> int | None:
    """Microseconds some task waited for a CPU since boot (Linux PSI), None without PSI."""
    try:
        text = Path("/proc/pressure/cpu").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("some "):
            return int(line.rsplit("total=", 1)[1])
    return None


@dataclass(frozen=True, slots=True)
class Usage:
    """CPU seconds of each process of the stack, and the CPU pressure, at one moment."""

    at: float
    cpu: dict[str, float]
    pressure_us: int | None


def usage_between(before: Usage, after: Usage, calls: int) -> dict[str, object]:
    """Each process's share of one core over the interval, its CPU per CALL (of ``calls``
    answered in the interval), and how much of the interval tasks waited for a CPU (0: a quiet
    machine; 1: something was always waiting)."""
    elapsed = after.at - before.at
    used = {name: after.cpu[name] - before.cpu.get(name, 0.0) for name in after.cpu}
    pressure = (
        (after.pressure_us - before.pressure_us) / 1e6 / elapsed
        if after.pressure_us is not None and before.pressure_us is not None and elapsed > 0
        else None
    )
    return {
        "seconds": round(elapsed, 3),
        "core_share": {name: round(cpu / elapsed, 3) for name, cpu in used.items()},
        "us_per_call": {name: round(cpu / calls * 1e6, 1) for name, cpu in used.items()}
        if calls
        else {},
        "cpu_pressure": round(pressure, 3) if pressure is not None else None,
    }


def listen_overflows() -> int | None:
    """Connections the kernel dropped because an accept queue was full (TcpExt
    ListenOverflows, machine-wide since boot; None where it cannot be read)."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return None
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            return int(table["ListenOverflows"]) if "ListenOverflows" in table else None
    return None


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def file_limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise StackError(f"no open-file limit for pid {pid}")


def pid_with_argument(argument: str) -> int:
    """The process whose command line has ``argument`` (our nats-server, by its store)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if argument.encode() in (entry / "cmdline").read_bytes().split(b"\0"):
                    return int(entry.name)
    raise StackError(f"no process with argument {argument!r}")


class Service:
    """One child process, its output in a log file."""

    def __init__(self, name: str, process: asyncio.subprocess.Process, log_path: Path) -> None:
        self.name = name
        self.process = process
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.process.pid

    def check_running(self) -> None:
        if self.process.returncode is not None:
            raise StackError(
                f"{self.name} exited with {self.process.returncode}; its log ends:\n"
                + self.log_path.read_text(errors="replace")[-3000:]
            )

    async def stop(self, deadline: float = STOP_DEADLINE) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGCONT)  # in case a benchmark paused it
                self.process.terminate()
        try:
            async with asyncio.timeout(deadline):
                await self.process.wait()
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


async def spawn(
    name: str, args: list[str], env: dict[str, str], workdir: Path, *, pipe_stdout: bool = False
) -> Service:
    """Start a child, its stderr (and stdout, unless piped to us) in ``workdir/NAME.log``."""
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *args,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if pipe_stdout else log,
            stderr=log,
        )
    return Service(name, process, log_path)


def oye(command: str) -> list[str]:
    return [str(Path(sys.executable).parent / "oye"), command]


def service_env(**settings: str) -> dict[str, str]:
    """The environment of a service: ours without any OYE_* or NATS_URL, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OYE_") and k != "NATS_URL"}
    env.update(settings)
    return env


@dataclass(frozen=True, slots=True)
class StackOptions:
    log_level: str = "INFO"
    #: Frames the relay may hold while NATS lags: big, so nothing is dropped in a benchmark.
    publish_buffer: int = 2_000_000
    #: The stream's size limit: big enough for every frame of a full run.
    stream_max_bytes: int = 8 * 1024**3
    csms_compression: bool = False
    with_logger: bool = True
    #: Relay processes sharing the chargers' port (OYE_RELAY_PROCESSES of ``oye up``).
    relays: int = 1


class Stack:
    """NATS, the echo CSMS, the relay, the inject-api and the logger, all started."""

    def __init__(self, workdir: Path, options: StackOptions) -> None:
        self.workdir = workdir
        self.options = options
        self.nats = NatsServer(workdir / "nats")
        self.nats_pid = 0
        self.csms: Service | None = None
        self.csms_port = 0
        #: Every relay process; their CPU is summed as "relay" (:meth:`usage`).
        self.relays: list[Service] = []
        self.relay_metrics_ports: list[int] = []
        self.api: Service | None = None
        self.logger: Service | None = None
        self.ocpp_port = free_port()
        self.http_port = free_port()
        self.data_dir = workdir / "data"

    @property
    def relay_url(self) -> str:
        return f"ws://127.0.0.1:{self.ocpp_port}/ocpp"

    @property
    def direct_url(self) -> str:
        return f"ws://127.0.0.1:{self.csms_port}/ocpp"

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "oye-log.sqlite3"

    def env(self, **extra: str) -> dict[str, str]:
        return service_env(
            NATS_URL=self.nats.url,
            OYE_BIND_HOST="127.0.0.1",
            OYE_OCPP_PORT=str(self.ocpp_port),
            OYE_HTTP_PORT=str(self.http_port),
            OYE_METRICS_PORT="0",
            OYE_LOGGER_METRICS_PORT="0",
            OYE_UPSTREAM_URL=self.direct_url,
            OYE_PUBLISH_BUFFER=str(self.options.publish_buffer),
            OYE_STREAM_MAX_BYTES=str(self.options.stream_max_bytes),
            OYE_ADMIN_PASSWORD=ADMIN_PASSWORD,
            OYE_DATA_DIR=str(self.data_dir),
            OYE_RELAY_ID="bench-relay",
            OYE_LOG_LEVEL=self.options.log_level,
            # Every simulated charger comes from 127.0.0.1 and the closed loop sends far
            # above a real charger's rate: lift the per-address and per-charger limits
            # (a release without these settings ignores them).
            OYE_MAX_CONNECTIONS_PER_ADDRESS="100000",
            OYE_CHARGER_CALL_RATE="1000000",
            OYE_FLOOD_DISCONNECT_AFTER="1000000",
            **extra,
        )

    async def start(self) -> None:
        await asyncio.to_thread(self.nats.start)
        self.nats_pid = pid_with_argument(str(self.nats.data_dir / "jetstream"))
        self.csms, self.csms_port = await start_csms(
            self.workdir, compression=self.options.csms_compression
        )
        await self._start_relays()
        self.api = await spawn("inject-api", oye("inject-api"), self.env(), self.workdir)
        if self.options.with_logger:
            self.logger = await spawn("logger", oye("logger"), self.env(), self.workdir)
        await self._ready()

    async def _start_relays(self) -> None:
        # The environments `oye up` gives its relays (the port shared, an id each), each
        # with a metrics port we know, so every one is ready before anything is measured.
        planned = relay_processes(self.env(), count=self.options.relays, metrics_port=0)
        self.relay_metrics_ports = [free_port() for _ in planned]
        self.relays = [
            await spawn(
                relay.name,
                oye("relay"),
                {**relay.env, "OYE_METRICS_PORT": str(port)},
                self.workdir,
            )
            for relay, port in zip(planned, self.relay_metrics_ports, strict=True)
        ]

    @property
    def relay(self) -> Service | None:
        """The first relay process (the only one unless ``relays`` > 1)."""
        return self.relays[0] if self.relays else None

    def relay_pids(self) -> list[int]:
        return [relay.pid for relay in self.relays]

    async def restart_relay(self) -> None:
        """Fresh relay processes (a clean heap for memory figures), ready end to end."""
        await asyncio.gather(*(relay.stop() for relay in self.relays))
        await self._start_relays()
        await self._ready()

    async def _ready(self, limit: float = 60.0) -> None:
        try:
            async with asyncio.timeout(limit):
                # Every relay, not just the first: the port takes chargers once one listens.
                for port in self.relay_metrics_ports:
                    await self._wait_ready(port)
                await self._wait_port(self.ocpp_port)
                await self._wait_port(self.http_port)
                await self.probe()
                if self.logger is not None:
                    while rows_in_sqlite(self.sqlite_path) == 0:
                        self._check()
                        await asyncio.sleep(0.1)  # another process's commit: no event
        except TimeoutError:
            self._check()
            raise StackError(f"the stack was not ready in {limit:.0f} s") from None

    async def _wait_port(self, port: int) -> None:
        while True:
            self._check()
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)  # not listening yet: no event to wait for
                continue
            writer.close()
            return

    async def _wait_ready(self, port: int) -> None:
        """Until ``/readyz`` on ``port`` answers 200 (listening, on NATS)."""
        while True:
            self._check()
            with contextlib.suppress(OSError, EOFError, HttpError):
                client = await HttpConnection.open("127.0.0.1", port)
                try:
                    if (await client.request("GET", "/readyz", b"", {})).status == 200:
                        return
                finally:
                    await client.close()
            await asyncio.sleep(0.05)  # not ready yet: no event to wait for

    def _check(self) -> None:
        for service in self.services:
            service.check_running()

    @property
    def services(self) -> list[Service]:
        found = [self.csms, *self.relays, self.api, self.logger]
        return [service for service in found if service is not None]

    @property
    def pids(self) -> list[int]:
        return [self.nats_pid, *(service.pid for service in self.services)]

    async def probe(self) -> None:
        """A charger boots through the relay and answers an injection through the API."""
        async with probe_charger(self.relay_url, f"bench-probe-{secrets.token_hex(3)}") as cp:
            client = await HttpConnection.open("127.0.0.1", self.http_port)
            try:
                while True:
                    response = await client.request(
                        "POST",
                        f"/api/inject/{cp}",
                        json.dumps({"action": "GetConfiguration", "payload": {}}).encode(),
                        {
                            "Authorization": basic_auth("admin", ADMIN_PASSWORD),
                            "Content-Type": "application/json",
                        },
                    )
                    if response.status == 200:
                        return
                    if response.status != 503:  # 503: the relay is not on NATS yet
                        raise StackError(f"injection probe: HTTP {response.status}")
                    await asyncio.sleep(0.1)
            finally:
                await client.close()

    async def quiesce(self, *, at_least: float = 0.5, limit: float = 120.0) -> float:
        """Wait until the stack is idle (NATS, CSMS, relay, API, logger under 5 % of a core
        for half a second): the previous run's work, the log catching up, is finished.
        Returns the seconds waited."""
        return await wait_idle(self.pids, at_least=at_least, limit=limit)

    def usage(self) -> Usage:
        processes = {"nats": self.nats_pid}
        processes.update(
            (name, service.pid)
            for name, service in (
                ("csms", self.csms),
                ("inject-api", self.api),
                ("logger", self.logger),
            )
            if service is not None
        )
        cpu = {name: cpu_seconds(pid) for name, pid in processes.items()}
        # "relay" is every relay process together (CPU per CALL, cores); with several,
        # each one's share too, to show how the kernel spread the chargers.
        relays = {relay.name: cpu_seconds(relay.pid) for relay in self.relays}
        cpu["relay"] = sum(relays.values())
        if len(relays) > 1:
            cpu.update(relays)
        return Usage(at=time.monotonic(), cpu=cpu, pressure_us=cpu_pressure_us())

    def pause_logger(self) -> None:
        if self.logger is not None:
            os.kill(self.logger.pid, signal.SIGSTOP)

    def resume_logger(self) -> None:
        if self.logger is not None:
            os.kill(self.logger.pid, signal.SIGCONT)

    async def stop(self) -> None:
        await asyncio.gather(
            *(s.stop() for s in (*self.relays, self.api, self.logger) if s is not None)
        )
        if self.csms is not None:
            await self.csms.stop()
        await asyncio.to_thread(self.nats.stop)


async def start_csms(workdir: Path, *, compression: bool) -> tuple[Service, int]:
    args = [sys.executable, "-m", "bench.csms", "--port", "0"]
    if compression:
        args.append("--compression")
    csms = await spawn("csms", args, service_env(), workdir, pipe_stdout=True)
    assert csms.process.stdout is not None
    try:
        async with asyncio.timeout(30):
            line = (await csms.process.stdout.readline()).decode().split()
    except TimeoutError:
        raise StackError("the echo CSMS did not start in 30 s") from None
    if line[:1] != ["listening"]:
        csms.check_running()
        raise StackError(f"the echo CSMS said {line!r}")
    return csms, int(line[1])


@contextlib.asynccontextmanager
async def probe_charger(url: str, charge_point_id: str) -> AsyncIterator[str]:
    """A charger that boots and then answers every CALL with an empty CALLRESULT."""
    ws = await connect(
        f"{url}/{charge_point_id}",
        subprotocols=[Subprotocol("ocpp1.6")],
        compression=None,
        proxy=None,
    )
    await ws.send('[2,"boot","BootNotification",{"chargePointVendor":"b","chargePointModel":"p"}]')
    await ws.recv()
    answering = asyncio.create_task(_answer_calls(ws))
    try:
        yield charge_point_id
    finally:
        await ws.close()
        await answering


async def _answer_calls(ws: ClientConnection) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for message in ws:
            found = head(message) if isinstance(message, str) else None
            if found is not None and found[0] == 2:
                await ws.send(f'[3,"{found[1]}",{{}}]')


def rows_in_sqlite(path: Path, where: str = "", *args: str) -> int:
    """Rows in the log (0 before the logger created it), read-only beside the logger."""
    import sqlite3

    if not path.exists():
        return 0
    db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        return int(db.execute(f"SELECT count(*) FROM logs {where}", args).fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


async def wait_idle(
    pids: Iterable[int], *, at_least: float, limit: float, busy: float = 0.05
) -> float:
    """Wait until ``pids`` together use under ``busy`` of a core over half a second."""
    pids = list(pids)
    began = time.monotonic()
    await asyncio.sleep(at_least)
    window = 0.5
    while True:
        before = sum(cpu_seconds(pid) for pid in pids)
        await asyncio.sleep(window)  # CPU time only shows in /proc: sample it
        used = sum(cpu_seconds(pid) for pid in pids) - before
        waited = time.monotonic() - began
        if used < busy * window or waited > limit:
            return waited
