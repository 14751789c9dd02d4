"""Configuration from the environment: defaults, and errors that name the variable."""

from __future__ import annotations

import pytest

from oye_shared.settings import SettingsError, load_settings

pytestmark = pytest.mark.unit


def test_defaults_are_the_documented_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ports 9000/8080, all interfaces, prefix oye, standalone."""
    for name in ("OYE_OCPP_PORT", "OYE_HTTP_PORT", "OYE_UPSTREAM_URL", "NATS_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert (settings.ocpp_port, settings.http_port, settings.bind_host) == (9000, 8080, "0.0.0.0")
    assert settings.subject_prefix == "oye"
    assert settings.upstream_url is None
    assert settings.stream_name == "OYE_TRAFFIC"


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """OYE_* and NATS_URL set the fields."""
    monkeypatch.setenv("OYE_OCPP_PORT", "9100")
    monkeypatch.setenv("NATS_URL", "nats://127.0.0.1:4333")
    monkeypatch.setenv("OYE_UPSTREAM_URL", "wss://csms.example/ocpp")
    settings = load_settings()
    assert settings.ocpp_port == 9100
    assert settings.nats_servers == ["nats://127.0.0.1:4333"]
    assert settings.upstream_url == "wss://csms.example/ocpp"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OYE_OCPP_PORT", "ninety"),
        ("OYE_HTTP_PORT", "70000"),
        ("OYE_UPSTREAM_URL", "http://csms.example"),
        ("NATS_URL", "localhost:4222"),
        ("OYE_SUBJECT_PREFIX", "oye.*"),
        ("OYE_UPSTREAM_TLS_VERIFY", "maybe"),
        ("OYE_UPSTREAM_CA_FILE", "/nonexistent/ca.pem"),
        ("OYE_OFFLINE_MODE", "panic"),
    ],
)
def test_a_bad_value_fails_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    """The error message names the environment variable that is wrong."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings()
