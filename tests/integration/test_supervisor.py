"""``oye up``: its own NATS on a free port when the default one is taken, a crashed service
restarted, a clean stop on SIGTERM, and a bad setting refused at once by name."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from websockets.asyncio.client import connect

from oye_cli.supervisor import StartupError, start_embedded_nats
from oye_shared.settings import load_settings
from tests.conftest import free_port

ROOT = Path(__file__).parents[2]
OYE = ROOT / ".venv" / "bin" / "oye"
PASSWORD = "supervisor-test-admin-password"


@contextlib.contextmanager
def occupied_port() -> Iterator[int]:
    """A port something else is listening on, for as long as the block runs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.mark.integration
async def test_a_taken_default_nats_port_gets_a_free_one_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """OYE_NATS_PORT not set and its port taken: our own nats-server on another port, one line."""
    monkeypatch.delenv("OYE_NATS_PORT", raising=False)
    with occupied_port() as taken:
        settings = load_settings(data_dir=tmp_path / "data", nats_port=taken)
        server = start_embedded_nats(settings)
        try:
            assert server.port is not None
            assert server.port != taken
            lines = capsys.readouterr().out.splitlines()
            assert len(lines) == 1
            assert "OYE_NATS_PORT" in lines[0]
            assert str(taken) in lines[0]
            nc = await nats.connect(server.url, max_reconnect_attempts=0)
            try:
                await nc.flush(timeout=5)
                assert nc.connected_url is not None
                assert nc.connected_url.port == server.port
            finally:
                await nc.close()
        finally:
            server.stop()


@pytest.mark.integration
def test_an_explicit_nats_port_that_is_taken_stops_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OYE_NATS_PORT set to a taken port: StartupError naming the variable, no other port."""
    with occupied_port() as taken:
        monkeypatch.setenv("OYE_NATS_PORT", str(taken))
        settings = load_settings(data_dir=tmp_path / "data")
        with pytest.raises(StartupError, match="OYE_NATS_PORT"):
            start_embedded_nats(settings)
    assert not (tmp_path / "data" / "nats").exists()


def oye_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "OYE_DATA_DIR": str(tmp_path / "data"),
        "OYE_OCPP_PORT": str(free_port()),
        "OYE_HTTP_PORT": str(free_port()),
        "OYE_NATS_PORT": str(free_port()),
        "OYE_METRICS_PORT": str(free_port()),
        "OYE_LOGGER_METRICS_PORT": str(free_port()),
        "OYE_BIND_HOST": "127.0.0.1",
        "OYE_ADMIN_PASSWORD": PASSWORD,
        **extra,
    }
    env.pop("NATS_URL", None)
    return env


async def read_until(stream: asyncio.StreamReader, seen: list[str], needle: str) -> str:
    """Read the output line by line until one contains ``needle``; return that line."""
    while True:
        line = (await stream.readline()).decode()
        if not line:
            raise AssertionError(f"output ended before {needle!r}:\n" + "".join(seen))
        seen.append(line)
        if needle in line:
            return line


def service_children(parent: int, service: str) -> list[int]:
    """The child processes of ``parent`` that run ``oye_cli.main <service>``."""
    children: list[int] = []
    for task in Path(f"/proc/{parent}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):
            children += [int(pid) for pid in (task / "children").read_text().split()]
    found = []
    for pid in children:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if argv[-3:] == [b"oye_cli.main", service.encode(), b""]:
                found.append(pid)
    return found


@pytest.mark.e2e
@pytest.mark.skipif(sys.platform != "linux", reason="finds the relay through /proc")
async def test_a_killed_service_is_restarted_and_sigterm_stops_everything(
    tmp_path: Path,
) -> None:
    """SIGKILL the relay: the supervisor logs it, starts a new one that accepts chargers;
    SIGTERM then stops the whole stack within 10 s."""
    env = oye_env(tmp_path)
    process = await asyncio.create_subprocess_exec(
        OYE, "up", env=env, stdout=asyncio.subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert process.stdout is not None
    output: list[str] = []
    try:
        async with asyncio.timeout(60):
            await read_until(process.stdout, output, "oye_relay.main: relay")
        [relay] = service_children(process.pid, "relay")
        os.kill(relay, signal.SIGKILL)
        async with asyncio.timeout(30):
            exited = await read_until(process.stdout, output, "relay exited with")
            assert "restarting" in exited
            assert str(-signal.SIGKILL) in exited
            await read_until(process.stdout, output, "oye_relay.main: relay")
        [restarted] = service_children(process.pid, "relay")
        assert restarted != relay
        drain = asyncio.create_task(process.stdout.read())

        url = f"ws://127.0.0.1:{env['OYE_OCPP_PORT']}/ocpp/X"
        async with asyncio.timeout(10), connect(url, subprotocols=["ocpp1.6"]) as charger:  # type: ignore[list-item]
            assert charger.subprotocol == "ocpp1.6"

        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            code = await process.wait()
        rest = (await drain).decode()
        assert code == 0, "".join(output) + rest
        assert "oye: stopped" in rest
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)  # the supervisor stops its children
            try:
                async with asyncio.timeout(15):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


@pytest.mark.integration
async def test_a_bad_setting_stops_oye_up_at_once_naming_the_variable(tmp_path: Path) -> None:
    """OYE_OCPP_PORT=ninety: a non-zero exit and a message naming OYE_OCPP_PORT, nothing started."""
    process = await asyncio.create_subprocess_exec(
        OYE,
        "up",
        env=oye_env(tmp_path, OYE_OCPP_PORT="ninety"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(20):
        stdout, stderr = await process.communicate()
    assert process.returncode != 0
    assert "OYE_OCPP_PORT" in stderr.decode()
    assert "ninety" in stderr.decode()
    assert b"oye: NATS" not in stdout
    assert not (tmp_path / "data").exists()
