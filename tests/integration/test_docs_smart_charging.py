"""docs/SMART_CHARGING.md tells the truth: every curl, run with curl as written against the
real stack and the simulated chargers the page starts, gets the answer the page shows.

Normalised, explicitly: the moment a composite schedule starts (``scheduleStart`` and the
1.6 ``startSchedule`` of a GetCompositeSchedule answer), the ``messageId`` of a CALLERROR
reply, and the transaction ids (the documented ones stand for whatever this run got).
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client

from oye_shared.settings import Settings
from tests.integration.test_simulate_cli import Simulation, simulating, started_transaction
from tests.support.relay import Watcher, watching
from tests.support.stack import ADMIN_PASSWORD, Stack, stack_running

pytestmark = pytest.mark.integration

DOC = Path(__file__).parents[2] / "docs" / "SMART_CHARGING.md"
README = Path(__file__).parents[2] / "README.md"
WAIT = 20.0
#: The transaction ids the page shows (the first the proxy hands out; the one the 2.0.1
#: simulator chose when the answers were captured).
DOCUMENTED_TRANSACTIONS = {"CP16": "2000000000", "CP201": "dac1195bcbc84ed486f7bc3b73968890"}
VERSION_OF = {"CP16": "1.6", "CP201": "2.0.1"}

_STEP = re.compile(
    r"```bash\n(?P<command>curl .*?)```\s*\n"
    r"Answer(?: \(HTTP (?P<status>\d{3})\))?:\s*\n"
    r"```json\n(?P<answer>.*?)```",
    re.S,
)


@dataclass(frozen=True)
class Step:
    command: str
    status: int
    answer: str

    @property
    def body(self) -> Any:
        return json.loads(re.search(r"-d '(.*)'", self.command, re.S).group(1))  # type: ignore[union-attr]

    @property
    def charger(self) -> str:
        return re.search(r"/api/(?:inject|chargers)/([^/ ]+)", self.command).group(1)  # type: ignore[union-attr]

    @property
    def action(self) -> str:
        action: str = self.body.get("action", "smart-charging")
        return action


def doc_steps() -> list[Step]:
    text = DOC.read_text()
    return [
        Step(m["command"].strip(), int(m["status"] or 200), m["answer"])
        for m in _STEP.finditer(text)
    ]


def simulate_commands() -> list[list[str]]:
    """The ``oye simulate`` command lines the page runs, as argument lists."""
    lines = re.findall(r"^\.venv/bin/oye simulate (.*)$", DOC.read_text(), re.M)
    return [shlex.split(line) for line in lines]


def as_run_here(command: str, stack: Stack, transactions: dict[str, str]) -> str:
    """The page's command with this test's port and password, and this run's transactions."""
    command = command.replace("http://localhost:8080", stack.api_url).replace(
        "YOUR_PASSWORD", ADMIN_PASSWORD
    )
    for documented, actual in transactions.items():
        command = command.replace(documented, actual)
    return command


async def run_curl(command: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        "bash", "-c", command + " -s -w '\\n%{http_code}'", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    body, _, status = out.decode().rpartition("\n")
    return int(status), body


def normalised(step: Step, body: str, transactions: dict[str, str]) -> Any:
    """An answer with the run's variable parts replaced by the page's (see the docstring)."""
    for documented, actual in transactions.items():
        body = body.replace(actual, documented)
    answer = json.loads(body)
    if step.action == "GetCompositeSchedule":
        answer = _times_out(answer)
    if step.status == 502:
        answer["messageId"] = "<id>"
    return answer


def _times_out(answer: Any) -> Any:
    if isinstance(answer, dict):
        return {
            key: "<time>" if key in ("scheduleStart", "startSchedule") else _times_out(value)
            for key, value in answer.items()
        }
    if isinstance(answer, list):
        return [_times_out(item) for item in answer]
    return answer


@pytest.fixture
async def stack(settings: Settings) -> AsyncIterator[Stack]:
    async with stack_running(settings) as running:
        yield running


def test_every_curl_of_the_page_has_its_answer_and_every_charger_is_started() -> None:
    """No curl without a documented answer; each curl's charger is one the page starts."""
    curls = len(re.findall(r"```bash\ncurl ", DOC.read_text()))
    steps = doc_steps()
    assert curls == len(steps) >= 30
    assert "PENDING" not in DOC.read_text()
    started = {
        args[args.index("--id") + 1]: args[args.index("--ocpp") + 1] for args in simulate_commands()
    }
    assert started == VERSION_OF
    assert {step.charger for step in steps} == set(VERSION_OF)
    for charger, documented in DOCUMENTED_TRANSACTIONS.items():
        assert any(documented in s.command for s in steps if s.charger == charger)


async def test_every_curl_gets_the_documented_answer(
    stack: Stack, settings: Settings, nc: Client
) -> None:
    """In page order, against both simulated chargers; each answer as documented."""
    base = f"ws://127.0.0.1:{settings.ocpp_port}/ocpp"
    transactions: dict[str, str] = {}
    async with AsyncExitStack() as running:
        frames: dict[str, Watcher] = {}
        sims: dict[str, Simulation] = {}
        for args in simulate_commands():
            charger = args[args.index("--id") + 1]
            subject = f"{settings.subject_prefix}.frames.{charger}.>"
            frames[charger] = await running.enter_async_context(watching(nc, subject))
            sims[charger] = await running.enter_async_context(simulating(*args, base))
        for sim in sims.values():
            await sim.wait_for_line(": boot accepted")
        for step in doc_steps():
            status, body = await run_curl(as_run_here(step.command, stack, transactions))
            assert status == step.status, (step.command, body)
            documented = normalised(step, step.answer, {})
            assert normalised(step, body, transactions) == documented, step.command
            if step.action in ("RemoteStartTransaction", "RequestStartTransaction"):
                version = VERSION_OF[step.charger]
                actual = await started_transaction(frames[step.charger], version)
                transactions[DOCUMENTED_TRANSACTIONS[step.charger]] = actual
        assert set(transactions) == set(DOCUMENTED_TRANSACTIONS.values())
        for sim in sims.values():
            assert await sim.terminate() == 0


def quick_start() -> str:
    """The README's "Simulate one" part of the quick start."""
    text = README.read_text()
    start = text.index("### No charger at hand? Simulate one")
    return text[start : text.index("\n## ", start)]


async def test_the_readmes_quick_start_simulator_and_first_curl_print_what_it_shows(
    stack: Stack, settings: Settings
) -> None:
    """``.venv/bin/oye simulate`` as shown (here with the test's URL), then the guide's first
    curl: the same answer, and the simulator prints the lines shown (times aside)."""
    section = quick_start()
    (simulate,) = re.findall(r"^\.venv/bin/oye simulate(.*)$", section, re.M)
    (command,) = re.findall(r"```bash\n(curl .*?)```", section, re.S)
    (answer,) = re.findall(r"```json\n(.*?)```", section, re.S)
    shown = [
        line.split(" ", 1)[1]
        for block in re.findall(r"```text\n(.*?)```", section, re.S)
        for line in block.splitlines()
    ]
    base = f"ws://127.0.0.1:{settings.ocpp_port}/ocpp"
    async with simulating(*shlex.split(simulate), base) as sim:
        await sim.wait_for_line("SIM-1: boot accepted")
        status, body = await run_curl(as_run_here(command.strip(), stack, {}))
        assert (status, json.loads(body)) == (200, json.loads(answer))
        await sim.wait_for_line("SIM-1 -> RESULT GetConfiguration")
        assert await sim.terminate() == 0
    printed = [line.split(" ", 1)[1] for line in sim.lines]
    times = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
    for line in shown:
        expected = times.sub(
            "<time>", line.replace("127.0.0.1:9000", f"127.0.0.1:{settings.ocpp_port}")
        )
        assert expected in [times.sub("<time>", p) for p in printed], line
