"""TLS towards chargers: wss:// (security profile 2), client certificates (profile 3), and
certificate files replaced while the relay runs. Certificates are made here with the
system's openssl; the chargers are the ``ocpp`` package's ChargePoint over websockets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from ocpp.v16 import ChargePoint as OcppChargePoint
from ocpp.v16 import call as call16
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake
from websockets.typing import Subprotocol

from oye_relay.tls import ChargerTLS, ChargerTLSError, TLSFiles, server_context
from oye_shared.settings import Settings
from tests.support.relay import RunningRelay, eventually, relay_running

pytestmark = pytest.mark.integration

OPENSSL = "/usr/bin/openssl"
EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
REQUEST_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
x509_extensions = ca_ext
[dn]
CN = {name}
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""
SERVER_EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""
CLIENT_EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


@dataclass(frozen=True)
class Issued:
    certificate: Path
    key: Path

    @property
    def der(self) -> bytes:
        return ssl.PEM_cert_to_DER_cert(self.certificate.read_text())


class Pki:
    """Throwaway CAs and the certificates they sign, in one directory."""

    def __init__(self, where: Path) -> None:
        self.where = where
        (where / "server.ext").write_text(SERVER_EXTENSIONS)
        (where / "client.ext").write_text(CLIENT_EXTENSIONS)
        self._serial = 0

    def _openssl(self, *args: str) -> None:
        subprocess.run([OPENSSL, *args], cwd=self.where, check=True, capture_output=True)

    def ca(self, name: str) -> Issued:
        (self.where / f"{name}.cnf").write_text(REQUEST_CONFIG.format(name=name))
        self._openssl(
            *("req", "-x509", *EC_KEY, "-config", f"{name}.cnf", "-days", "2"),
            *("-keyout", f"{name}.key", "-out", f"{name}.pem"),
        )
        return Issued(self.where / f"{name}.pem", self.where / f"{name}.key")

    def issue(self, ca: Issued, name: str, *, usage: str) -> Issued:
        """A certificate for ``name`` signed by ``ca``; ``usage`` is "server" or "client"."""
        self._serial += 1
        (self.where / f"{name}.cnf").write_text(REQUEST_CONFIG.format(name=name))
        self._openssl(
            *("req", "-new", *EC_KEY, "-config", f"{name}.cnf"),
            *("-keyout", f"{name}.key", "-out", f"{name}.csr"),
        )
        self._openssl(
            *("x509", "-req", "-in", f"{name}.csr", "-CA", str(ca.certificate)),
            *("-CAkey", str(ca.key), "-set_serial", str(self._serial), "-days", "2"),
            *("-extfile", f"{usage}.ext", "-out", f"{name}.pem"),
        )
        return Issued(self.where / f"{name}.pem", self.where / f"{name}.key")


@dataclass(frozen=True)
class Certificates:
    server_ca: Issued
    server_a: Issued
    server_b: Issued
    charger_ca: Issued
    charger: Issued
    other_ca: Issued
    other_charger: Issued


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    pki = Pki(tmp_path_factory.mktemp("charger-pki"))
    server_ca, charger_ca, other_ca = pki.ca("server-ca"), pki.ca("charger-ca"), pki.ca("other-ca")
    return Certificates(
        server_ca=server_ca,
        server_a=pki.issue(server_ca, "server-a", usage="server"),
        server_b=pki.issue(server_ca, "server-b", usage="server"),
        charger_ca=charger_ca,
        charger=pki.issue(charger_ca, "TLS-CP", usage="client"),
        other_ca=other_ca,
        other_charger=pki.issue(other_ca, "TLS-CP-other", usage="client"),
    )


@dataclass(frozen=True)
class LiveFiles:
    """The files the relay is configured with, in a directory the test may change."""

    certificate: Path
    key: Path
    client_ca: Path

    def install(self, source: Path, target: Path) -> None:
        """Replace ``target`` the way deployment tools do: write aside, then rename."""
        aside = target.with_suffix(".new")
        shutil.copyfile(source, aside)
        os.replace(aside, target)


@pytest.fixture
def live_files(tmp_path: Path, certificates: Certificates) -> LiveFiles:
    where = tmp_path / "tls"
    where.mkdir()
    files = LiveFiles(where / "cert.pem", where / "key.pem", where / "client-ca.pem")
    shutil.copyfile(certificates.server_a.certificate, files.certificate)
    shutil.copyfile(certificates.server_a.key, files.key)
    shutil.copyfile(certificates.charger_ca.certificate, files.client_ca)
    return files


def with_tls(settings: Settings, files: LiveFiles, *, client_ca: bool = False) -> Settings:
    return settings.model_copy(
        update={
            "tls_cert": files.certificate,
            "tls_key": files.key,
            "tls_client_ca": files.client_ca if client_ca else None,
        }
    )


def charger_context(certificates: Certificates, client: Issued | None = None) -> ssl.SSLContext:
    """What a charger configured for profile 2 (or 3, with ``client``) uses."""
    context = ssl.create_default_context(cafile=certificates.server_ca.certificate)
    if client is not None:
        context.load_cert_chain(client.certificate, client.key)
    return context


def wss_url(relay: RunningRelay, charge_point_id: str) -> str:
    return "wss" + relay.url(charge_point_id).removeprefix("ws")


@contextlib.asynccontextmanager
async def tls_charger(
    url: str, context: ssl.SSLContext, server_hostname: str | None = None
) -> AsyncIterator[ClientConnection]:
    async with connect(
        url,
        ssl=context,
        server_hostname=server_hostname,
        subprotocols=[Subprotocol("ocpp1.6")],
        open_timeout=5,
    ) as connection:
        yield connection


def peer_certificate(connection: ClientConnection) -> bytes | None:
    ssl_object = connection.transport.get_extra_info("ssl_object")
    assert ssl_object is not None
    certificate: bytes | None = ssl_object.getpeercert(binary_form=True)
    return certificate


async def boot(connection: ClientConnection, charge_point_id: str) -> str:
    """A BootNotification from an ``ocpp`` ChargePoint; the status the relay answered."""
    peer = OcppChargePoint(charge_point_id, connection, response_timeout=10)
    receiving = asyncio.create_task(peer.start())
    try:
        result = await peer.call(
            call16.BootNotification(charge_point_model="TLS", charge_point_vendor="OYE")
        )
    finally:
        receiving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receiving
    status: str = result.status
    return status


async def served_certificate(
    url: str, context: ssl.SSLContext, server_hostname: str | None = None
) -> bytes | None:
    async with tls_charger(url, context, server_hostname) as connection:
        return peer_certificate(connection)


async def refused(url: str, context: ssl.SSLContext | None) -> BaseException:
    """The error a charger gets when the relay will not finish the TLS handshake with it."""
    with pytest.raises((InvalidHandshake, OSError)) as caught:
        async with connect(
            url, ssl=context, subprotocols=[Subprotocol("ocpp1.6")], open_timeout=5
        ) as connection:
            # With TLS 1.3 the client learns of a refused certificate on its first read.
            await connection.recv()
    return caught.value


async def test_a_charger_boots_over_wss_with_security_profile_2(
    settings: Settings,
    live_files: LiveFiles,
    certificates: Certificates,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With OYE_TLS_CERT/KEY a charger that trusts the server CA boots over TLS 1.2+, gets
    the relay's certificate, and the start-up log says wss://."""
    with caplog.at_level(logging.INFO, logger="oye_relay"):
        async with (
            relay_running(with_tls(settings, live_files)) as relay,
            tls_charger(wss_url(relay, "TLS-CP"), charger_context(certificates)) as charger,
        ):
            assert await boot(charger, "TLS-CP") == "Accepted"
            assert peer_certificate(charger) == certificates.server_a.der
            ssl_object = charger.transport.get_extra_info("ssl_object")
            assert ssl_object.version() in ("TLSv1.2", "TLSv1.3")
    started = [r.getMessage() for r in caplog.records if "wss://" in r.getMessage()]
    assert started
    assert f"wss://127.0.0.1:{settings.ocpp_port}/ocpp/" in started[0]
    assert "security profile 2" in started[0]


async def test_plain_ws_is_refused_when_tls_is_on(
    settings: Settings, live_files: LiveFiles, certificates: Certificates
) -> None:
    """A ws:// charger on the TLS port never completes a WebSocket handshake; the listener
    keeps serving wss:// afterwards."""
    async with relay_running(with_tls(settings, live_files)) as relay:
        await refused(relay.url("PLAIN-CP"), None)
        async with tls_charger(wss_url(relay, "TLS-CP"), charger_context(certificates)) as charger:
            assert await boot(charger, "TLS-CP") == "Accepted"


async def test_with_a_client_ca_only_chargers_with_a_certificate_it_signed_get_in(
    settings: Settings, live_files: LiveFiles, certificates: Certificates
) -> None:
    """Profile 3: no client certificate, or one from another CA, fails the TLS handshake;
    a certificate signed by OYE_TLS_CLIENT_CA boots."""
    async with relay_running(with_tls(settings, live_files, client_ca=True)) as relay:
        url = wss_url(relay, "TLS-CP")
        await refused(url, charger_context(certificates))
        await refused(url, charger_context(certificates, certificates.other_charger))
        async with tls_charger(url, charger_context(certificates, certificates.charger)) as charger:
            assert await boot(charger, "TLS-CP") == "Accepted"


@pytest.mark.parametrize("server_hostname", [None, "localhost"], ids=["no-sni", "sni"])
async def test_replaced_certificate_files_are_served_to_new_connections(
    settings: Settings,
    live_files: LiveFiles,
    certificates: Certificates,
    server_hostname: str | None,
) -> None:
    """After the certificate and key files are replaced, new handshakes (with or without a
    server name) get the new certificate; a charger already connected stays connected."""
    async with relay_running(with_tls(settings, live_files)) as relay:
        context = charger_context(certificates)
        async with tls_charger(wss_url(relay, "TLS-CP"), context, server_hostname) as before:
            assert peer_certificate(before) == certificates.server_a.der
            live_files.install(certificates.server_b.key, live_files.key)
            live_files.install(certificates.server_b.certificate, live_files.certificate)

            async def new_certificate_served() -> bool:
                probe = wss_url(relay, "TLS-PROBE")
                served = await served_certificate(probe, context, server_hostname)
                return served == certificates.server_b.der

            await eventually(new_certificate_served, every=0.1)
            assert await boot(before, "TLS-CP") == "Accepted"


async def test_a_bad_new_certificate_is_logged_and_the_previous_one_kept(
    settings: Settings,
    live_files: LiveFiles,
    certificates: Certificates,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A certificate whose key does not match is refused with an error in the log, the old
    certificate is still served, and a good pair written later is taken up."""
    with caplog.at_level(logging.INFO, logger="oye_relay.tls"):
        async with relay_running(with_tls(settings, live_files)) as relay:
            url, context = wss_url(relay, "TLS-CP"), charger_context(certificates)
            live_files.install(certificates.server_b.certificate, live_files.certificate)

            async def reload_failed() -> bool:
                assert await served_certificate(url, context) == certificates.server_a.der
                return any(r.levelno == logging.ERROR for r in caplog.records)

            await eventually(reload_failed, every=0.1)
            (error,) = [r for r in caplog.records if r.levelno == logging.ERROR]
            assert "keeping the previous certificate" in error.getMessage()
            assert str(live_files.certificate) in error.getMessage()

            live_files.install(certificates.server_b.key, live_files.key)

            async def new_certificate_served() -> bool:
                return await served_certificate(url, context) == certificates.server_b.der

            await eventually(new_certificate_served, every=0.1)


async def test_a_replaced_client_ca_bundle_admits_its_chargers_and_drops_the_old_ones(
    settings: Settings, live_files: LiveFiles, certificates: Certificates
) -> None:
    """Profile 3 with the client CA file replaced: chargers of the new CA get in, and
    chargers of the CA that was removed from the bundle no longer do."""
    async with relay_running(with_tls(settings, live_files, client_ca=True)) as relay:
        url = wss_url(relay, "TLS-CP")
        old = charger_context(certificates, certificates.charger)
        new = charger_context(certificates, certificates.other_charger)
        async with tls_charger(url, old) as charger:
            assert await boot(charger, "TLS-CP") == "Accepted"
        live_files.install(certificates.other_ca.certificate, live_files.client_ca)

        async def new_ca_admitted() -> bool:
            try:
                async with tls_charger(url, new) as charger:
                    await boot(charger, "TLS-CP")
            except (InvalidHandshake, OSError):
                return False
            return True

        await eventually(new_ca_admitted, every=0.1)
        await refused(url, old)


async def test_certificate_files_that_do_not_load_stop_the_relay_at_start(
    settings: Settings, live_files: LiveFiles, certificates: Certificates
) -> None:
    """A key that does not match the certificate is an error at start naming the variables."""
    shutil.copyfile(certificates.server_b.key, live_files.key)
    with pytest.raises(ChargerTLSError, match="OYE_TLS_CERT"):
        async with relay_running(with_tls(settings, live_files)):
            pass


def test_the_files_are_looked_at_no_more_than_once_per_interval(
    live_files: LiveFiles, certificates: Certificates
) -> None:
    """check() reads nothing before the interval has passed, and reloads once per change."""
    now = [100.0]
    tls = ChargerTLS(
        TLSFiles(live_files.certificate, live_files.key),
        clock=lambda: now[0],
        check_interval=1.0,
    )
    first = tls.current
    live_files.install(certificates.server_b.key, live_files.key)
    live_files.install(certificates.server_b.certificate, live_files.certificate)
    now[0] += 0.5
    assert tls.check() is False
    assert tls.current is first
    now[0] += 0.6
    assert tls.check() is True
    assert tls.current is not first
    now[0] += 5
    assert tls.check() is False
    assert tls.files.security_profile == 2


def test_the_contexts_require_tls_12_and_resume_no_session(live_files: LiveFiles) -> None:
    """TLS 1.2 at least; no session tickets, so every connection checks its certificate."""
    context = server_context(TLSFiles(live_files.certificate, live_files.key, live_files.client_ca))
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.options & ssl.OP_NO_TICKET
    assert context.num_tickets == 0
    assert context.verify_mode == ssl.CERT_REQUIRED
