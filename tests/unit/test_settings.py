"""Configuration from the environment: defaults, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

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


@pytest.fixture
def pem_files(tmp_path: Path) -> dict[str, Path]:
    """Three files that exist (settings check only that; the relay loads them)."""
    files = {}
    for name in ("cert", "key", "ca"):
        files[name] = tmp_path / f"{name}.pem"
        files[name].write_text("-----BEGIN PLACEHOLDER-----\n")
    return files


def test_charger_tls_files_are_read(
    monkeypatch: pytest.MonkeyPatch, pem_files: dict[str, Path]
) -> None:
    """OYE_TLS_CERT, OYE_TLS_KEY and OYE_TLS_CLIENT_CA set the three paths; unset, TLS is off."""
    for name in ("OYE_TLS_CERT", "OYE_TLS_KEY", "OYE_TLS_CLIENT_CA"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert (settings.tls_cert, settings.tls_key, settings.tls_client_ca) == (None, None, None)
    monkeypatch.setenv("OYE_TLS_CERT", str(pem_files["cert"]))
    monkeypatch.setenv("OYE_TLS_KEY", str(pem_files["key"]))
    monkeypatch.setenv("OYE_TLS_CLIENT_CA", str(pem_files["ca"]))
    settings = load_settings()
    assert settings.tls_cert == pem_files["cert"]
    assert settings.tls_key == pem_files["key"]
    assert settings.tls_client_ca == pem_files["ca"]


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({"OYE_TLS_CERT": "cert"}, "OYE_TLS_KEY"),
        ({"OYE_TLS_KEY": "key"}, "OYE_TLS_CERT"),
        ({"OYE_TLS_CLIENT_CA": "ca"}, "OYE_TLS_CERT"),
        ({"OYE_TLS_CERT": "cert", "OYE_TLS_KEY": "/nonexistent/key.pem"}, "OYE_TLS_KEY"),
        ({"OYE_TLS_CERT": "/nonexistent/cert.pem", "OYE_TLS_KEY": "key"}, "OYE_TLS_CERT"),
        (
            {"OYE_TLS_CERT": "cert", "OYE_TLS_KEY": "key", "OYE_TLS_CLIENT_CA": "/nonexistent"},
            "OYE_TLS_CLIENT_CA",
        ),
    ],
    ids=["cert-alone", "key-alone", "ca-alone", "no-key-file", "no-cert-file", "no-ca-file"],
)
def test_incomplete_charger_tls_settings_fail_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
    pem_files: dict[str, Path],
    given: dict[str, str],
    named: str,
) -> None:
    """A certificate without its key (or the reverse), a client CA without both, or a path
    that is not a file stops the service with the variable in the message."""
    for variable, value in given.items():
        monkeypatch.setenv(variable, str(pem_files.get(value, value)))
    with pytest.raises(SettingsError, match=named):
        load_settings()
