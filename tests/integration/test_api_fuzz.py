"""Schemathesis against the API's own OpenAPI document, on the real stack: no 5xx, no crash.

The stack (relay, inject-api, logger, one nats-server) runs in this process; schemathesis
runs as its command-line tool in a child process, so its blocking HTTP client never
stalls the event loop that serves it. Runs are bounded (a fixed number of examples per
operation) and deterministic (``--generation-deterministic``: derandomized, no example database).

What is not fuzzed, and why:

- ``POST /api/change-password`` runs last, alone: it changes the admin's password, after
  which every authenticated request is a 401 (and, five of those later, a 429).
- The ``stateful`` phase (chains of calls following links): FastAPI declares no links,
  and it would not fit the time budget.
- The coverage phase without credentials (see the runs below).

What is allowed besides 1xx-4xx: ``POST /api/inject/{chargePointId}`` answers 503 when no
relay holds the charger (none is connected here), at once. Every other 5xx fails.

The API's users are hashed with argon2id at its production cost (64 MiB, several passes),
which every Basic request pays once; here the admin's hash uses argon2id's cheapest
parameters so that a few hundred authenticated requests take seconds, not minutes. What
is fuzzed is the routes, not the hashing.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher, Type
from nats.js.kv import KeyValue

import oye_api.app
from oye_api.users import UserStore
from oye_logger.main import run as run_logger
from oye_shared.settings import Settings
from tests.support.relay import service_running
from tests.support.stack import ADMIN_PASSWORD, Stack, stack_running

pytestmark = pytest.mark.integration

#: Examples per operation in the fuzzing phase.
MAX_EXAMPLES = 10
#: A whole schemathesis run must finish within this; it takes seconds.
RUN_DEADLINE = 90

CHANGE_PASSWORD = "/api/change-password"
#: Examples from the document, the coverage phase (each parameter's boundaries, missing
#: and wrongly typed values, systematically), then random data.
EVERY_PHASE = ("--phases", "examples,coverage,fuzzing")

CONFIG = """\
[checks]
not_a_server_error.enabled = true

[[operations]]
include-path = "/api/inject/{chargePointId}"
checks.not_a_server_error.expected-statuses = ["1xx", "2xx", "3xx", "4xx", "503"]
"""


def cheap_user_store(kv: KeyValue, hasher: PasswordHasher | None = None) -> UserStore:
    return UserStore(kv, PasswordHasher(time_cost=1, memory_cost=64, parallelism=1, type=Type.ID))


@contextlib.asynccontextmanager
async def fuzzable_stack(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Stack]:
    """Relay, API (cheap admin hash) and logger, so /api/logs has someone to ask."""
    monkeypatch.setattr(oye_api.app, "UserStore", cheap_user_store)
    async with stack_running(settings) as stack, service_running(run_logger, settings):
        yield stack


async def schemathesis(stack: Stack, tmp_path: Path, *options: str) -> tuple[int, str]:
    """Run ``schemathesis run`` against the stack's OpenAPI document; (exit code, output)."""
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "--no-color",
        "run",
        f"{stack.api_url}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--generation-deterministic",  # also: no example database
        "--workers",
        "1",
        "--request-timeout",
        "20",
        "--warnings",
        "off",
        *options,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        async with asyncio.timeout(RUN_DEADLINE):
            output, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


@pytest.mark.timeout(300)
async def test_no_operation_answers_a_server_error_authenticated_or_not(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every operation, with the admin's credentials and then without any: only 2xx-4xx
    (and the inject route's documented 503); the stack still serves afterwards."""
    auth = f"admin:{ADMIN_PASSWORD}"
    runs: list[tuple[str, int, str, float]] = []
    async with fuzzable_stack(settings, monkeypatch) as stack:
        for name, options in (
            ("authenticated", ("--auth", auth, "--exclude-path", CHANGE_PASSWORD, *EVERY_PHASE)),
            ("change-password", ("--auth", auth, "--include-path", CHANGE_PASSWORD, *EVERY_PHASE)),
            # Without credentials every /api route stops at the 401: the middleware, the
            # routing and the auth are what is tested, and random data finds that as well.
            ("anonymous", ("--phases", "examples,fuzzing")),
        ):
            began = time.monotonic()
            code, output = await schemathesis(stack, tmp_path, *options)
            runs.append((name, code, output, time.monotonic() - began))
        async with stack.client() as http:
            health = await http.get("/health")
    for name, code, output, seconds in runs:
        print(f"--- schemathesis, {name}: exit {code} in {seconds:.1f} s\n{output[-3000:]}")
    failed = {name: output for name, code, output, _ in runs if code != 0}
    assert not failed, "\n\n".join(f"{name}:\n{output}" for name, output in failed.items())
    assert health.status_code == 200
