"""The README's commands work as written: every curl to the API and to the health ports,
run with curl against the real stack and simulated chargers, and every ``nats`` CLI line
(subjects and streams) of the README and of docs/MONITORING.md, done with nats-py (no
nats CLI here): each subject gets the frames it says it gets.

The quick start's simulator and first curl, with their output, are
tests/integration/test_docs_smart_charging.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.client import Client

from oye_cli.simulator import SimulatedCharger
from oye_logger.main import run as run_logger
from oye_shared import headers as h
from oye_shared.settings import Settings
from tests.conftest import free_port
from tests.integration.test_simulate_cli import simulating
from tests.support.relay import Watcher, eventually, service_running, watching
from tests.support.stack import ADMIN_PASSWORD, Stack, stack_running

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text()
MONITORING = (ROOT / "docs" / "MONITORING.md").read_text()
WAIT = 20.0
#: The published ports the README's URLs name, by the setting that moves them here.
DOC_PORTS = {"8080": "http_port", "9100": "metrics_port", "9101": "logger_metrics_port"}
CHARGER = "CP001"  # the charger the documents' examples name


def commands(text: str, program: str) -> list[str]:
    """Each ``program`` command of the document's bash blocks, as the shell reads them:
    ``\\`` continuations joined, a single-quoted argument across lines kept whole."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        pending, joiner = "", "\n"
        for line in block.splitlines():
            if not pending and line.lstrip().startswith("#"):
                continue
            pending = f"{pending}{joiner}{line.strip()}" if pending else line
            joiner = "\n"  # inside a quoted argument the line break stays
            if pending.endswith("\\"):
                pending, joiner = pending[:-1].rstrip(), " "
            elif pending.count("'") % 2 == 0:
                if pending.strip().startswith(program + " "):
                    found.append(pending.strip())
                pending = ""
    return found


def api_curls() -> list[str]:
    """The README's curls outside the quick start (whose output is checked elsewhere)."""
    start = README.index("### No charger at hand? Simulate one")
    rest = README[:start] + README[README.index("\n## ", start) :]
    return [c for c in commands(rest, "curl") if re.search(r"localhost:(8080|910[01])", c)]


def as_run_here(command: str, settings: Settings) -> str:
    """The README's command with this test's ports and password."""
    for port, field in DOC_PORTS.items():
        command = command.replace(f"localhost:{port}", f"127.0.0.1:{getattr(settings, field)}")
    return command.replace("YOUR_PASSWORD", ADMIN_PASSWORD)


async def run_curl(command: str) -> tuple[int, str]:
    """Run the command line as a shell would: the HTTP status and what it printed. A curl
    piped into another command gets --fail instead (its status is then "2xx or 3xx")."""
    piped = "|" in command
    option = "--fail " if piped else "-w '\\n%{http_code}' "
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-o",
        "pipefail",
        "-c",
        command.replace("curl ", f"curl {option}", 1),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,  # curl's progress meter
    )
    out, _ = await process.communicate()
    assert process.returncode == 0, (command, out)
    if piped:
        return 200, out.decode()
    body, _, status = out.decode().rpartition("\n")
    return int(status), body


@contextlib.asynccontextmanager
async def everything(settings: Settings) -> AsyncIterator[Stack]:
    """Relay, inject-api and logger on the test's ports (the README's, moved)."""
    settings = settings.model_copy(
        update={"metrics_port": free_port(), "logger_metrics_port": free_port()}
    )
    async with stack_running(settings) as stack, service_running(run_logger, stack.settings):
        yield stack


def charger_ids(curls: list[str]) -> set[str]:
    return {m for c in curls for m in re.findall(r"/api/(?:inject|chargers)/([\w-]+)", c)}


async def test_every_api_and_health_curl_of_the_readme_answers_as_it_says(
    settings: Settings,
) -> None:
    """With unknown chargers held pending, ``oye simulate --id CP001`` waits; then each
    curl, in the README's order, succeeds: it is listed, approved (it reconnects and
    boots), given passwords and revoked, answers the injection; the metrics grep shows
    only our metrics, /readyz says ready, and the secondary backend is configured."""
    curls = api_curls()
    assert len(curls) >= 9, curls
    assert charger_ids(curls) - {"pending"} == {CHARGER}
    held = settings.model_copy(update={"unknown_chargers": "pending"})
    base = f"ws://127.0.0.1:{settings.ocpp_port}/ocpp"
    async with (
        everything(held) as stack,
        simulating(base, "--id", CHARGER, "--reconnect-max", "1") as sim,
    ):
        await sim.wait_for_line(f"{CHARGER}: boot Pending")
        for command in curls:
            here = as_run_here(command, stack.settings)
            if "/readyz" in command:  # the logger is ready once it consumes the stream

                async def ready(here: str = here) -> tuple[int, str] | None:
                    status, body = await run_curl(here)
                    return (status, body) if status == 200 else None

                status, body = await eventually(ready, seconds=WAIT, every=0.1)
            else:
                status, body = await run_curl(here)
            assert 200 <= status < 300, (command, status, body)
            if command.endswith("/api/chargers/pending"):
                assert [entry["chargePointId"] for entry in json.loads(body)] == [CHARGER]
            elif command.endswith("/approve"):
                # Closed with 1012, it reconnects and is let in; the README then sets its
                # password, which a connected charger needs only for its next connection.
                await sim.wait_for_line(f"{CHARGER}: boot accepted")
            elif "-X PUT" in command:  # a chosen password is not echoed; a generated one is
                generated = json.loads(body)["password"]
                if " -d " in command:
                    assert generated is None
                else:
                    assert len(generated) == 40
            elif "/api/inject/" in command:
                (key,) = json.loads(body)["configurationKey"]
                assert (key["key"], key["value"]) == ("HeartbeatInterval", "300")
            elif "/metrics" in command:
                lines = body.splitlines()
                assert lines, "grep '^oye_' printed nothing"
                assert all(line.startswith("oye_") for line in lines)
                assert 'oye_chargers_connected{ocpp_version="1.6"} 1.0' in lines
            elif "/readyz" in command:
                assert json.loads(body) == {"status": "ready"}
        async with stack.client() as api:
            config = (await api.get("/api/config")).json()
        assert [backend["name"] for backend in config["secondaryBackends"]] == ["ha"]
        assert await sim.terminate() == 0


# --- the nats CLI ------------------------------------------------------------------------------


def nats_lines() -> list[list[str]]:
    """Every ``nats`` command of the README and MONITORING.md, as its arguments (quoted
    subjects unquoted, the server option dropped)."""
    found = []
    for command in commands(README, "nats") + commands(MONITORING, "nats"):
        command = command.split("#")[0]
        command = re.sub(r'--server ("[^"]*"|\S+)', "", command)
        found.append(re.findall(r"'([^']*)'|(\S+)", command)[1:])
    return [[quoted or bare for quoted, bare in words] for words in found]


def what_it_says(pattern: str) -> tuple[str | None, str | None]:
    """The charger and direction a documented subject names (None: any)."""
    tokens = pattern.split(".")
    charger = tokens[2] if len(tokens) > 2 and tokens[2] not in ("*", ">") else None
    direction = tokens[3] if len(tokens) > 3 and tokens[3] not in ("*", ">") else None
    return charger, direction


async def test_every_documented_nats_subscription_gets_the_frames_it_names(
    settings: Settings, nc: Client
) -> None:
    """Each ``nats sub`` subject receives CP001's traffic, with the charger and direction
    it names; each ``nats stream view`` stream exists (the traffic one holds the frames)."""
    lines = nats_lines()
    subscriptions = [args[1] for args in lines if args[0] == "sub"]
    streams = [args[2] for args in lines if args[:2] == ["stream", "view"]]
    assert {args[0] for args in lines} <= {"sub", "stream"}, lines
    assert len(subscriptions) >= 5
    assert set(streams) == {"OYE_TRAFFIC", "OYE_REPLAY"}
    async with contextlib.AsyncExitStack() as opened:
        watchers: dict[str, Watcher] = {}
        for subject in dict.fromkeys(subscriptions):
            watchers[subject] = await opened.enter_async_context(watching(nc, subject))
        stack = await opened.enter_async_context(stack_running(settings))
        async with SimulatedCharger(stack.relay.url(CHARGER), CHARGER, version="1.6") as charger:
            await charger.boot()
            await charger.heartbeat()
        for subject, watcher in watchers.items():
            await watcher.wait_for(lambda _: True, WAIT)
            charger_named, direction = what_it_says(subject)
            assert charger_named in (None, CHARGER), subject
            for msg in watcher.messages:
                headers = msg.headers or {}
                if subject.split(".")[1] == "frames":
                    assert headers[h.CHARGE_POINT] == CHARGER, subject
                if direction is not None:
                    assert headers[h.DIRECTION] == direction, subject
        js = nc.jetstream()
        for stream in streams:
            info = await js.stream_info(stream)
            if stream == settings.stream_name:
                assert info.state.messages > 0
