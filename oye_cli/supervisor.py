"""``oye up``: NATS (embedded unless ``NATS_URL``), then every service as its own process.

``OYE_RELAY_PROCESSES`` relays share the chargers' port (:mod:`oye_cli.relays`), each
supervised on its own. A service that exits is restarted with backoff. SIGINT or SIGTERM
stops the services first (SIGTERM, then SIGKILL after a deadline), then the embedded
nats-server, all within :data:`STOP_DEADLINE` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping

from oye_cli.main import available_services
from oye_cli.nats_server import NatsServer, NatsServerError, port_is_free
from oye_cli.relays import RelayPortsError, RelayProcess, relay_processes
from oye_shared.logs import configure_logging
from oye_shared.settings import Settings, SettingsError, env_name, load_settings

log = logging.getLogger("oye.up")

STOP_DEADLINE = 8.0
RESTART_BACKOFF_MAX = 30.0
STABLE_AFTER = 30.0


class StartupError(Exception):
    """The stack cannot start; the message says why and which variable to change."""


def start_embedded_nats(settings: Settings) -> NatsServer:
    """Start our own nats-server; never silently share a NATS someone else runs."""
    port = settings.nats_port
    explicit = env_name("nats_port") in os.environ
    if not port_is_free("127.0.0.1", port):
        if explicit:
            raise StartupError(
                f"{env_name('nats_port')}={port}: that port is taken; choose a free one, "
                "or set NATS_URL to use the NATS that runs there"
            )
        print(
            f"oye: port {port} is taken (another NATS?); starting the embedded nats-server "
            f"on a free port instead (set {env_name('nats_port')} to choose one)",
            flush=True,
        )
        port = -1
    server = NatsServer(settings.data_dir / "nats", port=port)
    try:
        server.start()
    except NatsServerError as exc:
        raise StartupError(str(exc)) from exc
    return server


async def supervise(
    name: str, env: dict[str, str], stop: asyncio.Event, *, command: str | None = None
) -> None:
    """Run one service (``oye <command>``, by default its name), restarting it when it
    exits, until ``stop`` is set."""
    delay = 1.0
    while not stop.is_set():
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "oye_cli.main",
            command or name,
            env=env,
            start_new_session=True,
        )
        waiter = asyncio.create_task(process.wait())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if stop.is_set():
            await _terminate(name, process, waiter)
            return
        code = waiter.result()
        if time.monotonic() - started > STABLE_AFTER:
            delay = 1.0
        log.error("%s exited with %s; restarting in %.0f s", name, code, delay)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await stop.wait()
        delay = min(delay * 2, RESTART_BACKOFF_MAX)


async def _terminate(
    name: str, process: asyncio.subprocess.Process, waiter: asyncio.Task[int]
) -> None:
    if process.returncode is None:
        process.terminate()
    try:
        async with asyncio.timeout(STOP_DEADLINE - 2):
            await waiter
    except TimeoutError:
        log.warning("%s did not stop in time; killing it", name)
        process.kill()
        await waiter


async def run(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    services = available_services()
    relays = plan_relays(settings, os.environ) if "relay" in services else []
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    nats_server = None if settings.nats_url else start_embedded_nats(settings)
    try:
        nats_url = settings.nats_url or (nats_server.url if nats_server else "")
        (settings.data_dir / "nats.url").write_text(nats_url + "\n")
        env = {**os.environ, "NATS_URL": nats_url}
        _announce(settings, nats_url, embedded=nats_server is not None, services=services)
        if len(relays) > 1:
            _announce_relays(settings, relays)
        async with asyncio.TaskGroup() as group:
            for relay in relays:
                relay_env = {**relay.env, "NATS_URL": nats_url}
                group.create_task(supervise(relay.name, relay_env, stop, command="relay"))
            for name in services:
                if name != "relay":
                    group.create_task(supervise(name, env, stop))
        print("oye: stopped", flush=True)
    finally:
        if nats_server is not None:
            nats_server.stop(timeout=2)


def plan_relays(settings: Settings, env: Mapping[str, str]) -> list[RelayProcess]:
    """The relay processes to run; their metrics ports step over the stack's other ports."""
    others = {
        settings.logger_metrics_port,
        settings.http_port,
        settings.ocpp_port,
        settings.nats_port,
    }
    try:
        return relay_processes(
            env,
            count=settings.relay_processes,
            metrics_port=settings.metrics_port,
            taken=others - {0},
        )
    except RelayPortsError as exc:
        raise StartupError(str(exc)) from None


def _announce_relays(settings: Settings, relays: list[RelayProcess]) -> None:
    ports = (
        ", ".join(str(relay.metrics_port) for relay in relays)
        if settings.metrics_port
        else "free ports (OYE_METRICS_PORT=0)"
    )
    print(
        f"oye: {len(relays)} relay processes share port {settings.ocpp_port} (SO_REUSEPORT); "
        f"their /metrics on {ports}",
        flush=True,
    )


def _announce(settings: Settings, nats_url: str, *, embedded: bool, services: list[str]) -> None:
    host = "localhost" if settings.bind_host in ("0.0.0.0", "::") else settings.bind_host
    lines = [f"oye: NATS {'(embedded) ' if embedded else ''}at {nats_url}"]
    if embedded:
        lines.append(
            f"oye:   watch traffic: nats sub --server {nats_url} '{settings.subject_prefix}.>'"
        )
    if "relay" in services:
        scheme = "wss" if settings.tls_cert else "ws"
        lines.append(
            f"oye: chargers connect to {scheme}://{host}:{settings.ocpp_port}/ocpp/{{chargePointId}}"
        )
        lines.append(f"oye:   upstream CSMS: {settings.upstream_url or 'none (standalone)'}")
    if "inject-api" in services:
        lines.append(f"oye: dashboard at http://{host}:{settings.http_port}/")
        lines.append(f"oye: API at http://{host}:{settings.http_port}/api (docs: /docs)")
    lines.append(f"oye: services: {', '.join(services)}; Ctrl-C stops everything")
    print("\n".join(lines), flush=True)


def main() -> None:
    try:
        settings = load_settings()
    except SettingsError as exc:
        raise SystemExit(f"oye: {exc}") from None
    configure_logging(settings.log_level)
    try:
        asyncio.run(run(settings))
    except StartupError as exc:
        raise SystemExit(f"oye: {exc}") from None
