"""The relay's upstream TLS: a wss:// CSMS is verified, against a CA file if given, and
trusted blindly only when verification is turned off, with a warning."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from nats.aio.client import Client
from websockets.asyncio.client import connect

from oye_shared.settings import Settings
from tests.support.raw_csms import RawCsms
from tests.support.relay import event_body, relay_running, watching

pytestmark = pytest.mark.integration

OPENSSL = "/usr/bin/openssl"
CA_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
x509_extensions = ca_ext
[dn]
CN = OYE test CA
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
EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class Pki:
    ca: Path
    certificate: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certificate, self.key)
        return context


def openssl(*args: str | Path, cwd: Path) -> None:
    subprocess.run([OPENSSL, *map(str, args)], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throwaway CA and a server certificate it signed for 127.0.0.1 and localhost."""
    where = tmp_path_factory.mktemp("pki")
    (where / "ca.cnf").write_text(CA_CONFIG)
    (where / "server.ext").write_text(SERVER_EXTENSIONS)
    openssl(
        "req",
        "-x509",
        *EC_KEY,
        "-config",
        "ca.cnf",
        "-days",
        "2",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        cwd=where,
    )
    openssl(
        "req",
        "-new",
        *EC_KEY,
        "-config",
        "ca.cnf",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        cwd=where,
    )
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-set_serial",
        "1",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
        cwd=where,
    )
    return Pki(ca=where / "ca.pem", certificate=where / "server.pem", key=where / "server.key")


@pytest.fixture
async def wss_csms(pki: Pki) -> AsyncIterator[RawCsms]:
    async with RawCsms(ssl_context=pki.server_context()) as csms:
        yield csms


class LogSignal(logging.Handler):
    """Keeps the records of one logger and wakes a test waiting for a matching one."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self._changed.set()

    def matching(self, predicate: Callable[[str], bool]) -> list[logging.LogRecord]:
        return [r for r in self.records if predicate(r.getMessage())]

    async def wait_for(
        self, predicate: Callable[[str], bool], count: int = 1, seconds: float = 10.0
    ) -> list[logging.LogRecord]:
        async with asyncio.timeout(seconds):
            while len(found := self.matching(predicate)) < count:
                self._changed.clear()
                await self._changed.wait()
        return found


@contextlib.contextmanager
def log_signal(name: str, level: int = logging.INFO) -> Iterator[LogSignal]:
    logger = logging.getLogger(name)
    signal, previous = LogSignal(), logger.level
    logger.addHandler(signal)
    logger.setLevel(level)
    try:
        yield signal
    finally:
        logger.removeHandler(signal)
        logger.setLevel(previous)


async def test_a_csms_signed_by_the_configured_ca_carries_frames_both_ways(
    settings: Settings, wss_csms: RawCsms, pki: Pki
) -> None:
    """With OYE_UPSTREAM_CA_FILE the wss:// CSMS is trusted: frames cross both ways over TLS."""
    trusting = settings.model_copy(
        update={"upstream_url": wss_csms.wss, "upstream_ca_file": pki.ca}
    )
    async with (
        relay_running(trusting) as relay,
        connect(relay.url("TLS1"), subprotocols=["ocpp1.6"]) as charger,  # type: ignore[list-item]
    ):
        connected = await wss_csms.wait_connection("TLS1")
        assert connected.connection.transport.get_extra_info("ssl_object") is not None
        assert charger.subprotocol == "ocpp1.6"
        await charger.send('[2,"t1","Heartbeat",{}]')
        assert (await wss_csms.wait_received(connected, 1)) == ['[2,"t1","Heartbeat",{}]']
        assert json.loads(await charger.recv()) == [3, "t1", {}]
        await connected.connection.send('[2,"c1","Reset",{"type":"Soft"}]')
        async with asyncio.timeout(10):
            assert await charger.recv() == '[2,"c1","Reset",{"type":"Soft"}]'


def unverified(message: str) -> bool:
    return "CSMS unreachable" in message and "CERTIFICATE_VERIFY_FAILED" in message


async def test_by_default_a_csms_with_an_unknown_ca_is_treated_as_unreachable(
    settings: Settings, nc: Client, wss_csms: RawCsms
) -> None:
    """Verification is on by default: the charger is accepted and answered by the proxy,
    every attempt fails certificate verification, and the CSMS never gets a connection."""
    default = settings.model_copy(update={"upstream_url": wss_csms.wss})
    with log_signal("oye_relay") as logs:
        async with (
            relay_running(default) as relay,
            watching(nc, "oye.events.>") as events,
            watching(nc, "oye.frames.>") as frames,
        ):
            async with connect(relay.url("TLS2"), subprotocols=["ocpp1.6"]) as charger:  # type: ignore[list-item]
                assert charger.subprotocol == "ocpp1.6"
                connected = await events.wait_for(lambda m: m.subject.endswith(".connected"))
                assert event_body(connected)["upstream"] == "down"
                await charger.send('[2,"t2","Heartbeat",{}]')
                async with asyncio.timeout(10):
                    answer = json.loads(await charger.recv())
                assert answer[:2] == [3, "t2"]
                assert "currentTime" in answer[2]
                await frames.wait_for(lambda m: m.subject.endswith(".PROXY_RESPONSE"))
                # The handshake's attempt and at least two reconnections, all refused by TLS.
                await logs.wait_for(unverified, count=3)
            await events.wait_for(lambda m: m.subject.endswith(".disconnected"))
    # Events are published in order: an upstream_up would have come before "disconnected".
    kinds = [m.subject.rsplit(".", 1)[-1] for m in events.messages]
    assert kinds == ["connected", "disconnected"]
    assert "DOWNSTREAM" not in {m.subject.rsplit(".", 1)[-1] for m in frames.messages}
    assert wss_csms.connections == []


async def test_with_verification_off_the_csms_is_reached_and_a_warning_is_logged(
    settings: Settings, wss_csms: RawCsms, caplog: pytest.LogCaptureFixture
) -> None:
    """OYE_UPSTREAM_TLS_VERIFY=false connects to the unknown CA's CSMS, and says so in the log."""
    blind = settings.model_copy(update={"upstream_url": wss_csms.wss, "upstream_tls_verify": False})
    with caplog.at_level(logging.WARNING, logger="oye_relay"):
        async with (
            relay_running(blind) as relay,
            connect(relay.url("TLS3"), subprotocols=["ocpp1.6"]) as charger,  # type: ignore[list-item]
        ):
            connected = await wss_csms.wait_connection("TLS3")
            await charger.send('[2,"t3","Heartbeat",{}]')
            assert (await wss_csms.wait_received(connected, 1)) == ['[2,"t3","Heartbeat",{}]']
            assert json.loads(await charger.recv()) == [3, "t3", {}]
    warnings = [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and "not verified" in r.getMessage().lower()
    ]
    assert len(warnings) == 1
    assert warnings[0].name == "oye_relay.upstream"
    assert "OYE_UPSTREAM_TLS_VERIFY" in warnings[0].getMessage()
