"""The README's run command, as a newcomer runs it: a charger talks through it to a CSMS,
the owner injects a command, and SIGTERM stops everything within 10 s."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from oye_cli.simulator import SimulatedCharger, charger_url
from tests.conftest import free_port
from tests.peers.csms import CsmsServer

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]
PASSWORD = "e2e-only-admin-password"


async def wait_for_lines(stream: asyncio.StreamReader, seen: list[str], *needles: str) -> None:
    """Read the command's output until every needle has appeared in some line."""
    missing = set(needles)
    while missing:
        line = (await stream.readline()).decode()
        if not line:
            raise AssertionError("the run command ended early:\n" + "".join(seen))
        seen.append(line)
        missing = {needle for needle in missing if needle not in line}


@pytest.fixture
async def csms() -> AsyncIterator[CsmsServer]:
    async with CsmsServer() as server:
        yield server


async def test_the_run_command_relays_injects_and_stops_on_sigterm(
    csms: CsmsServer, tmp_path: Path
) -> None:
    """make run brings up NATS and the services; traffic, injection and shutdown work."""
    ocpp_port, http_port = free_port(), free_port()
    env = {
        **os.environ,
        "OYE_DATA_DIR": str(tmp_path / "data"),
        "OYE_OCPP_PORT": str(ocpp_port),
        "OYE_HTTP_PORT": str(http_port),
        "OYE_METRICS_PORT": str(free_port()),
        "OYE_LOGGER_METRICS_PORT": str(free_port()),
        "OYE_BIND_HOST": "127.0.0.1",
        "OYE_UPSTREAM_URL": csms.url,
        "OYE_ADMIN_PASSWORD": PASSWORD,
    }
    env.pop("NATS_URL", None)
    env.pop("OYE_NATS_PORT", None)
    process = await asyncio.create_subprocess_exec(
        "make",
        "--no-print-directory",
        "run",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    output: list[str] = []
    try:
        async with asyncio.timeout(120):  # a first run may install the project
            await wait_for_lines(process.stdout, output, "Ctrl-C stops everything")
        announced = "".join(output)
        assert f"ws://127.0.0.1:{ocpp_port}/ocpp/{{chargePointId}}" in announced
        assert f"http://127.0.0.1:{http_port}/api" in announced
        nats_url = (tmp_path / "data" / "nats.url").read_text().strip()
        assert nats_url in announced
        async with asyncio.timeout(60):  # each service logs a line once it listens
            await wait_for_lines(
                process.stdout, output, "oye_relay.main: relay", "inject-api listening on"
            )
        drain = asyncio.create_task(process.stdout.read())

        relay = f"ws://127.0.0.1:{ocpp_port}/ocpp"
        async with (
            asyncio.timeout(60),
            SimulatedCharger(charger_url(relay, "E2E-1"), "E2E-1", version="1.6") as charger,
        ):
            boot = await charger.boot()
            assert boot.status == "Accepted"
            handle = await csms.wait_for_charger("E2E-1")
            async with httpx.AsyncClient(auth=("admin", PASSWORD), timeout=30) as api:
                reply = await api.post(
                    f"http://127.0.0.1:{http_port}/api/inject/E2E-1",
                    json={
                        "action": "GetConfiguration",
                        "payload": {"key": ["HeartbeatInterval"]},
                    },
                )
            assert reply.status_code == 200, reply.text
            assert reply.json()["configurationKey"][0]["key"] == "HeartbeatInterval"
            assert not handle.calls("GetConfiguration")

        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            code = await process.wait()
        rest = (await drain).decode()
        assert code == 0 or code == -signal.SIGTERM or code == 2, rest
        assert "oye: stopped" in rest
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)  # make passes it on to oye up
            try:
                async with asyncio.timeout(15):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
