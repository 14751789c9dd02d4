"""The compose stack, checked without Docker: docker-compose.yml, .env.example, the
Dockerfile and .dockerignore agree with the ``oye`` command and the settings.

No Docker engine runs where these run; tests/integration/test_compose_docker.py brings
the stack up where one does.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from oye_cli.main import SERVICES, build_parser
from oye_shared.settings import Settings, SettingsError, env_name, load_settings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
ENV_EXAMPLE = (ROOT / ".env.example").read_text()
DOCKERFILE = (ROOT / "Dockerfile").read_text()

#: Our services, by the ``oye`` subcommand each runs.
OYE_SERVICES = ("relay", "inject-api", "logger")
#: The settings each service's health check port comes from, and the ports it publishes.
HEALTH_PORT = {"relay": "metrics_port", "inject-api": "http_port", "logger": "logger_metrics_port"}
PUBLISHED = {
    "nats": {"nats_port"},
    "relay": {"ocpp_port", "metrics_port"},
    "inject-api": {"http_port"},
    "logger": set(),
}
#: Read by the compose file for the postgres image only (the one variable of .env.example
#: that is not an OYE setting); its value must be the password in OYE_DB_URL.
POSTGRES_VARIABLES = {"POSTGRES_PASSWORD"}
#: Where the relay sees ./certs.
CERTS_IN_CONTAINER = "/etc/oye/certs"
KNOWN = {env_name(field) for field in Settings.model_fields}
SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN")
#: Settings compose and the image fix (so the services find each other and the health
#: checks find them), not taken from .env: .env.example says so in prose.
FIXED_BY_COMPOSE = {
    "NATS_URL",
    "OYE_NATS_PORT",
    "OYE_BIND_HOST",
    "OYE_OCPP_PORT",
    "OYE_HTTP_PORT",
    "OYE_METRICS_PORT",
    "OYE_LOGGER_METRICS_PORT",
    "OYE_DATA_DIR",
    # One relay process per relay container: `oye up`'s several relays sharing a port.
    "OYE_RELAY_PROCESSES",
    "OYE_OCPP_REUSE_PORT",
}
#: Where each service's code is, and the shared modules every service runs (its main).
PACKAGES = {
    "relay": "services/relay/oye_relay",
    "inject-api": "services/inject-api/oye_api",
    "logger": "services/logger/oye_logger",
}
SHARED_EVERYWHERE = ("shared/oye_shared/bus.py", "shared/oye_shared/service.py")
#: Settings properties, by the fields they are computed from.
DERIVED = {
    "nats_servers": {"nats_url", "nats_port"},
    "stream_name": {"subject_prefix"},
    "offline_id_tag_set": {"offline_id_tags"},
}
#: Read by a service but rightly not passed to it.
NOT_PASSED = {"logger": {"relay_id"}}  # only names the logger's NATS connection


def services() -> dict[str, Any]:
    found: dict[str, Any] = COMPOSE["services"]
    return found


def environment(service: str) -> dict[str, str | None]:
    """A service's variables: ``NAME=value`` set here, ``NAME`` alone taken from .env."""
    entries = services()[service].get("environment", [])
    assert isinstance(entries, list), f"{service}: environment as a list of NAME[=value]"
    pairs = (entry.partition("=") for entry in entries)
    return {name: (value if sep else None) for name, sep, value in pairs}


def example_variables() -> dict[str, str]:
    """Every ``NAME=value`` of .env.example, set or shown commented out."""
    return dict(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=(.*)$", ENV_EXAMPLE, re.M))


def active_example_variables() -> dict[str, str]:
    return dict(re.findall(r"^([A-Z][A-Z0-9_]+)=(.*)$", ENV_EXAMPLE, re.M))


def default(field: str) -> Any:
    return Settings.model_fields[field].default


def final_stage() -> list[str]:
    """The Dockerfile's instructions after its last FROM (continuations joined)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    lines = [line.strip() for line in text.splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    last_from = max(i for i, line in enumerate(instructions) if line.upper().startswith("FROM "))
    return instructions[last_from:]


def instruction(stage: list[str], keyword: str) -> list[str]:
    return [line.split(None, 1)[1] for line in stage if line.split()[0].upper() == keyword]


def test_the_compose_file_has_the_stack_and_nothing_else() -> None:
    """NATS, the three services and PostgreSQL, each with a restart policy."""
    assert set(services()) == {"nats", *OYE_SERVICES, "postgres"}
    for name, service in services().items():
        assert service.get("restart") == "unless-stopped", name


@pytest.mark.parametrize("service", OYE_SERVICES)
def test_each_service_runs_its_own_oye_command(service: str) -> None:
    """The command is the ``oye`` subcommand of that name, as the CLI parses it."""
    command = services()[service]["command"]
    assert command == [service]
    assert command[0] in SERVICES
    assert build_parser().parse_args(command).command == service


def test_the_three_services_are_one_image_built_here() -> None:
    """Same image, built from the Dockerfile at the root."""
    images = {services()[name]["image"] for name in OYE_SERVICES}
    assert len(images) == 1
    for name in OYE_SERVICES:
        assert services()[name]["build"] == "."


@pytest.mark.parametrize("service", OYE_SERVICES)
def test_every_variable_a_service_gets_is_a_setting(service: str) -> None:
    """Each name set or taken from .env is one the settings read (no typo goes unnoticed)."""
    unknown = set(environment(service)) - KNOWN
    assert not unknown, f"{service} passes variables no setting reads: {sorted(unknown)}"


@pytest.mark.parametrize("service", OYE_SERVICES)
def test_the_fixed_values_are_valid_settings_and_point_at_the_nats_service(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NATS_URL=nats://nats:4222 everywhere; every value set in the file loads."""
    fixed = {name: value for name, value in environment(service).items() if value is not None}
    assert fixed["NATS_URL"] == "nats://nats:4222"
    for name, value in fixed.items():
        monkeypatch.setenv(name, value)
    load_settings()


def test_env_example_documents_exactly_what_the_compose_file_takes_from_env() -> None:
    """Every variable a service takes from .env is in .env.example, and every variable
    of .env.example is one a service takes (no dead documentation)."""
    taken = {
        name
        for service in services()
        for name, value in environment(service).items()
        if value is None
    }
    assert set(example_variables()) == taken


def settings_read_by(service: str) -> set[str]:
    """The settings fields a service's code reads (``settings.<name>``, properties
    resolved to their fields); shared/oye_shared/state.py counts where seed_config is used."""
    sources = [*(ROOT / PACKAGES[service]).rglob("*.py"), *(ROOT / s for s in SHARED_EVERYWHERE)]
    texts = [source.read_text() for source in sources]
    if any("seed_config" in text for text in texts):
        texts.append((ROOT / "shared/oye_shared/state.py").read_text())
    read: set[str] = set()
    for name in {m for text in texts for m in re.findall(r"settings\.([a-z_]+)\b", text)}:
        if name in Settings.model_fields:
            read.add(name)
        elif isinstance(getattr(Settings, name, None), property):
            assert name in DERIVED, f"Settings.{name}: say which fields it is computed from"
            read |= DERIVED[name]
    return read


@pytest.mark.parametrize("service", OYE_SERVICES)
def test_each_service_gets_every_setting_its_code_reads(service: str) -> None:
    """A setting a service reads is passed to it (from .env or fixed here), or fixed by
    the compose file and the image: none is silently stuck at its default in compose."""
    read = settings_read_by(service) - NOT_PASSED.get(service, set())
    assert read, f"{service}: found no settings read in {PACKAGES[service]}"
    passed = set(environment(service))
    missing = {env_name(field) for field in read} - passed - FIXED_BY_COMPOSE
    assert not missing, f"{service} reads settings compose does not pass: {sorted(missing)}"


def test_env_example_documents_every_setting() -> None:
    """Each setting is an example line of .env.example, or named there among the ones the
    compose file fixes (and those are taken from .env by no service)."""
    examples = set(example_variables())
    for name in sorted(KNOWN):
        if name in FIXED_BY_COMPOSE:
            assert name not in examples, f"{name} is fixed by compose, not set in .env"
            assert re.search(rf"^#.*\b{name}\b", ENV_EXAMPLE, re.M), f"{name} not mentioned"
        else:
            assert name in examples, f".env.example does not document {name}"
    for service in services():
        taken = {name for name, value in environment(service).items() if value is None}
        assert not taken & FIXED_BY_COMPOSE, service


def test_every_variable_of_env_example_is_a_setting_or_postgres_own() -> None:
    """Besides OYE settings only POSTGRES_PASSWORD, and only the postgres service takes it."""
    names = set(example_variables())
    assert names - KNOWN == POSTGRES_VARIABLES
    for name in POSTGRES_VARIABLES:
        users = {service for service in services() if name in environment(service)}
        assert users == {"postgres"}


def test_the_example_values_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Uncommented, each example value loads (files: named inside the relay's certs mount)."""
    assert f"./certs:{CERTS_IN_CONTAINER}:ro" in services()["relay"]["volumes"]
    path_fields = {"tls_cert", "tls_key", "tls_client_ca", "upstream_ca_file"}
    for name, value in example_variables().items():
        if name in POSTGRES_VARIABLES or not value:
            continue
        if name in {env_name(field) for field in path_fields}:
            assert value.startswith(CERTS_IN_CONTAINER + "/"), name
            continue
        with monkeypatch.context() as env:
            env.setenv(name, value)
            try:
                load_settings()
            except SettingsError as exc:
                pytest.fail(f".env.example: {name}={value}: {exc}")


def test_no_secret_is_committed() -> None:
    """Passwords are empty in .env.example, none is written in the compose file, the only
    uncommented line is the admin password to choose, and .env stays out of images."""
    for name, value in example_variables().items():
        if any(word in name for word in SECRET_WORDS):
            assert value == "", name
    assert active_example_variables() == {"OYE_ADMIN_PASSWORD": ""}
    assert "OYE_DB_URL" not in active_example_variables()
    for service in services():
        for name, fixed in environment(service).items():
            if any(word in name for word in SECRET_WORDS):
                assert fixed is None, f"{service}: {name} has a value in the compose file"
            assert fixed is None or not re.search(r"://[^/@]*@", fixed), f"{name}: credentials"
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ".env" in ignored


def port_mappings(service: str) -> list[tuple[int, int]]:
    """(host port, container port) of each published port; an address prefix is dropped."""
    mappings = []
    for entry in services()[service].get("ports", []):
        *_, host, container = str(entry).split(":")
        mappings.append((int(host), int(container)))
    return mappings


@pytest.mark.parametrize("service", [*OYE_SERVICES, "nats"])
def test_published_ports_are_the_default_ones(service: str) -> None:
    """9000 and 9100 (relay), 8080 (inject-api), 4222 (nats, this box only): the settings'
    defaults, on the same port outside, so the README's URLs hold."""
    expected = {default(field) for field in PUBLISHED[service]}
    mappings = port_mappings(service)
    assert {container for _, container in mappings} == expected
    assert all(host == container for host, container in mappings)
    if service == "nats":
        assert services()["nats"]["ports"] == ["127.0.0.1:4222:4222"]


def health_url(service: str) -> tuple[int, str]:
    """The port and path the service's health check asks for."""
    test = services()[service]["healthcheck"]["test"]
    if test[:3] == ["CMD", "python", "-c"]:
        compile(test[3], f"{service} healthcheck", "exec")  # valid Python, no curl needed
        assert "urllib.request" in test[3]
    found = re.search(r"http://127\.0\.0\.1:(\d+)(/[a-z]+)", " ".join(test))
    assert found, f"{service}: no local HTTP URL in {test}"
    return int(found.group(1)), found.group(2)


def serves_route(service: str, path: str) -> bool:
    """Whether the service's code serves ``path``: a GET of the API's OpenAPI schema; for
    the relay and the logger, a route string in their package or the shared one."""
    if service == "inject-api":
        from oye_api.app import create_app

        paths = create_app(load_settings()).openapi()["paths"]
        return "get" in paths.get(path, {})
    package = {"relay": "services/relay/oye_relay", "logger": "services/logger/oye_logger"}
    sources = [*(ROOT / package[service]).rglob("*.py"), *(ROOT / "shared").rglob("*.py")]
    return any(f'"{path}"' in source.read_text() for source in sources)


@pytest.mark.parametrize("service", OYE_SERVICES)
def test_health_checks_ask_each_service_for_readiness_where_it_serves_it(service: str) -> None:
    """GET /readyz on the service's own health port, an endpoint its code serves."""
    port, path = health_url(service)
    assert path == "/readyz"
    assert port == default(HEALTH_PORT[service])
    assert serves_route(service, path), f"{service} does not serve {path}"


def test_nats_runs_jetstream_on_a_volume_and_is_checked_on_its_monitoring_port() -> None:
    """-js, a store on the nats-data volume, /healthz on the monitoring port it opens."""
    nats = services()["nats"]
    command = nats["command"]
    assert "--jetstream" in command or "-js" in command
    store = command[command.index("--store_dir") + 1]
    assert f"nats-data:{store}" in nats["volumes"]
    monitoring = int(command[command.index("--http_port") + 1])
    assert health_url("nats") == (monitoring, "/healthz")
    assert nats["image"].split(":")[0] == "nats"


def test_dependencies_wait_for_health_checks_that_exist() -> None:
    """Every depends_on waits for service_healthy of a service that has a health check;
    each OYE service waits for NATS."""
    for name, service in services().items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert condition["condition"] == "service_healthy", (name, dependency)
            assert "healthcheck" in services()[dependency], (name, dependency)
    for name in OYE_SERVICES:
        assert "nats" in services()[name]["depends_on"], name
        assert "healthcheck" in services()[name], name


def test_postgres_is_behind_its_profile_and_optional_for_the_logger() -> None:
    """Only postgres has a profile; the logger waits for it only when it is there."""
    profiled = {name for name, service in services().items() if "profiles" in service}
    assert profiled == {"postgres"}
    assert services()["postgres"]["profiles"] == ["postgres"]
    assert services()["logger"]["depends_on"]["postgres"]["required"] is False
    assert "ports" not in services()["postgres"]


def test_the_dockerfile_is_multi_stage_slim_and_runs_oye_as_a_non_root_user() -> None:
    """A builder stage, then python:3.11-slim with the venv copied in, a numeric non-root
    USER, ENTRYPOINT oye and a default command the CLI knows."""
    froms = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", DOCKERFILE, re.M | re.I)
    assert len(froms) >= 2
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", DOCKERFILE, re.M)
    stage = final_stage()
    assert stage[0] == "FROM ${PYTHON_IMAGE}"
    assert any(line.startswith("COPY --from=builder") for line in stage)
    (user,) = instruction(stage, "USER")
    uid = user.split(":")[0]
    assert uid.isdigit(), "a numeric uid: Kubernetes' runAsNonRoot can check it"
    assert int(uid) != 0
    assert instruction(stage, "ENTRYPOINT") == ['["oye"]']
    (cmd,) = instruction(stage, "CMD")
    assert build_parser().parse_args(yaml.safe_load(cmd)).command in {"up", *SERVICES}
    assert "[dev]" not in DOCKERFILE


def test_the_image_environment_names_settings_only() -> None:
    """ENV lines of the final stage set only variables the settings (or Python) know."""
    for line in instruction(final_stage(), "ENV"):
        for assignment in shlex.split(line):
            name = assignment.partition("=")[0]
            assert name in KNOWN or name in {"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}


def test_the_build_context_leaves_local_state_out() -> None:
    """.venv, data, caches and .env are not sent to the Docker build."""
    ignored = set((ROOT / ".dockerignore").read_text().splitlines())
    for entry in (".venv", "data", ".env", ".pytest_cache", ".mypy_cache", ".hypothesis", ".git"):
        assert entry in ignored, entry
