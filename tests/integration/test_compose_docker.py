"""The compose stack for real: docker compose builds the image and brings up NATS, the
relay, the inject-api and the logger until every health check passes; a simulated
charger then connects through the published relay port and one injection goes through
the published API port, and the logger has stored it.

Needs a Docker engine and the compose plugin (2.24.4 or later, for the ``!override`` tag
below); skipped, saying which is missing, where there is none. The stack runs under its
own project name, so it never touches a stack started by hand from this checkout, and on
free host ports (the fixed ones are checked statically in tests/unit/test_compose.py).
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from oye_cli.simulator import SimulatedCharger, charger_url
from tests.support.relay import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

ROOT = Path(__file__).parents[2]
PASSWORD = "compose-test-admin-password"
CHARGER = "CP-DOCKER"
#: Published on a free port of the loopback interface instead of the fixed ones.
OVERRIDE = """\
services:
  nats:
    ports: !reset []
  relay:
    ports: !override
      - "127.0.0.1::9000"
  inject-api:
    ports: !override
      - "127.0.0.1::8080"
"""


def docker_missing() -> str | None:
    """Why the stack cannot run here, or None when a Docker engine and compose answer."""
    if shutil.which("docker") is None:
        return "no docker command on this machine"
    info = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if info.returncode != 0:
        reason = (info.stderr.strip().splitlines() or ["docker info failed"])[0]
        return f"no Docker engine reachable ({reason})"
    compose = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, timeout=30, check=False
    )
    if compose.returncode != 0:
        return "the docker compose plugin is not installed"
    return None


@dataclass
class ComposeStack:
    compose: Any  # testcontainers.compose.DockerCompose

    def url(self, service: str, port: int, scheme: str) -> str:
        host, published = self.compose.get_service_host_and_port(service, port)
        return f"{scheme}://{host or '127.0.0.1'}:{published}"


@pytest.fixture(scope="module")
def compose_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeStack]:
    if (reason := docker_missing()) is not None:
        pytest.skip(f"the compose stack test needs Docker: {reason}")
    from testcontainers.compose import DockerCompose

    where = tmp_path_factory.mktemp("compose")
    (where / "override.yml").write_text(OVERRIDE)
    # In place of .env: the test's own settings, not the checkout's.
    (where / "test.env").write_text(f"OYE_ADMIN_PASSWORD={PASSWORD}\n")
    compose = DockerCompose(
        context=ROOT,
        compose_file_name=["docker-compose.yml", str(where / "override.yml")],
        env_file=str(where / "test.env"),
        build=True,
        wait=True,  # up --wait: until every health check passes
    )
    with pytest.MonkeyPatch.context() as env:
        # Its own project: `down --volumes` at the end removes this test's volumes only.
        env.setenv("COMPOSE_PROJECT_NAME", f"oye-test-{uuid.uuid4().hex[:8]}")
        with compose:
            yield ComposeStack(compose)


async def test_a_charger_and_an_injection_go_through_the_compose_stack(
    compose_stack: ComposeStack,
) -> None:
    """Boot over the relay's port, GetConfiguration through the API's port answered by the
    charger, and the injection stored by the logger."""
    relay = compose_stack.url("relay", 9000, "ws") + "/ocpp"
    api = compose_stack.url("inject-api", 8080, "http")
    async with (
        SimulatedCharger(charger_url(relay, CHARGER), CHARGER, version="1.6") as charger,
        httpx.AsyncClient(base_url=api, auth=("admin", PASSWORD), timeout=60) as client,
    ):
        await charger.boot()

        async def injected() -> httpx.Response | None:
            response = await client.post(
                f"/api/inject/{CHARGER}",
                json={"action": "GetConfiguration", "payload": {"key": ["HeartbeatInterval"]}},
            )
            return response if response.status_code != 503 else None  # not yet on NATS

        response = await eventually(injected, seconds=30, every=0.5)
        assert response.status_code == 200, response.text
        (key,) = response.json()["configurationKey"]
        assert key["key"] == "HeartbeatInterval"

        async def logged() -> bool:
            page = await client.get(
                "/api/logs", params={"chargePointId": CHARGER, "action": "GetConfiguration"}
            )
            return page.status_code == 200 and len(page.json()["entries"]) >= 2

        await eventually(logged, seconds=30, every=0.5)
