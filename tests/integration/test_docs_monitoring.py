"""The Python examples of docs/MONITORING.md run as shown and print the traffic."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from oye_cli.nats_server import NatsServer
from oye_shared.settings import Settings
from oye_shared.subjects import encode_token
from tests.support.relay import relay_running

pytestmark = pytest.mark.integration

DOC = Path(__file__).parents[2] / "docs" / "MONITORING.md"


def python_examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


async def test_the_live_watcher_prints_frames_as_they_pass(
    settings: Settings, nats_server: NatsServer, tmp_path: Path
) -> None:
    """Run as a script next to data/nats.url, it prints each frame with its direction."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "nats.url").write_text(nats_server.url + "\n")
    watcher = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        python_examples()[0],
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
    )
    assert watcher.stdout is not None
    chatty = settings.model_copy(update={"charger_call_rate": 10_000.0})  # not a rate test
    async with (
        relay_running(chatty) as relay,
        connect(relay.url("Garage Box.1"), subprotocols=["ocpp1.6"]) as charger,  # type: ignore[list-item]
        asyncio.timeout(60),
    ):
        output = asyncio.create_task(watcher.stdout.read())
        n = 0
        while not output.done():  # the script subscribes when it is ready: keep talking
            await charger.send(f'[2,"m{n}","Heartbeat",{{}}]')
            await charger.recv()
            n += 1
        printed = output.result().decode()
    assert await watcher.wait() == 0
    assert "Garage Box.1 UPSTREAM Heartbeat [2," in printed
    assert "Garage Box.1 PROXY_RESPONSE Heartbeat [3," in printed


async def test_the_replay_example_reads_back_a_chargers_frames_from_the_stream(
    settings: Settings, nats_server: NatsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """replay() prints what the charger said, from the stored stream."""
    async with (
        relay_running(settings) as relay,
        connect(relay.url("CP.7"), subprotocols=["ocpp1.6"]) as charger,  # type: ignore[list-item]
    ):
        await charger.send('[2,"r1","Heartbeat",{}]')
        await charger.recv()
    namespace: dict[str, Any] = {}
    exec(python_examples()[1], namespace)
    await namespace["replay"](nats_server.url, encode_token("CP.7"))
    printed = capsys.readouterr().out
    assert 'UPSTREAM [2,"r1","Heartbeat",{}]' in printed
    assert "PROXY_RESPONSE [3," in printed
