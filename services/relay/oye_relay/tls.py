"""TLS towards chargers: ``wss://`` with OCPP security profile 2 or 3, and certificate reload.

``OYE_TLS_CERT`` and ``OYE_TLS_KEY`` make the relay listen with TLS (profile 2: the
charger authenticates with HTTP Basic, as before); ``OYE_TLS_CLIENT_CA`` also requires a
client certificate signed by that CA (profile 3).

The files are re-read when they change, without a restart: every TLS handshake checks the
files' modification times (at most once per :data:`CHECK_INTERVAL`, a few ``stat`` calls),
and when they changed a new context is built from them and used from that handshake on.
A new set that does not load (a half-written file, a key that does not match) is logged
and the previous certificate kept; it is tried again when the files change again.

The check runs in the listener context's ``sni_callback``, which OpenSSL calls for every
ClientHello (with ``None`` when the charger sends no server name), before the server's
certificate is chosen; the callback hands the handshake the current context. Switching
the whole context, rather than loading the new files into the live one, is what lets a
replaced client CA bundle also *drop* CAs, and keeps a failed load from leaving a
certificate without its key. Connections already open keep the certificate they got.
"""

from __future__ import annotations

import logging
import os
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from oye_shared.settings import Settings

log = logging.getLogger(__name__)

#: Seconds between two looks at the files' modification times.
CHECK_INTERVAL = 1.0

#: What identifies one version of a file: (mtime in ns, size, inode); None if unreadable.
FileStamp = tuple[int, int, int] | None


class ChargerTLSError(ValueError):
    """The certificate, key or client CA given at start cannot be loaded."""


@dataclass(frozen=True, slots=True)
class TLSFiles:
    """The PEM files of the charger-facing TLS listener."""

    certificate: Path
    key: Path
    client_ca: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> TLSFiles | None:
        """The files the settings name, or None when the relay listens with plain ws://."""
        if settings.tls_cert is None or settings.tls_key is None:
            return None
        return cls(settings.tls_cert, settings.tls_key, settings.tls_client_ca)

    @property
    def security_profile(self) -> int:
        """OCPP security profile: 2 (server certificate) or 3 (client certificates too)."""
        return 2 if self.client_ca is None else 3

    @property
    def paths(self) -> tuple[Path, ...]:
        return (self.certificate, self.key) + ((self.client_ca,) if self.client_ca else ())


def url_scheme(settings: Settings) -> str:
    """``wss`` when the settings turn charger TLS on, else ``ws``."""
    return "wss" if settings.tls_cert is not None else "ws"


def server_context(files: TLSFiles) -> ssl.SSLContext:
    """A server context for these files (TLS 1.2 or later, as the OCPP security profiles
    require); raises ``OSError`` (``ssl.SSLError`` included) if they do not load."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # No session resumption: a resumed session skips the client certificate check, so a
    # charger admitted under a CA since removed from the bundle could come back without
    # one. Chargers hold one long connection; a full handshake per connection costs nothing.
    context.options |= ssl.OP_NO_TICKET
    context.num_tickets = 0
    context.load_cert_chain(files.certificate, files.key)
    if files.client_ca is not None:
        context.load_verify_locations(cafile=files.client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def file_stamps(paths: tuple[Path, ...]) -> tuple[FileStamp, ...]:
    """The current version of each file; a replaced file (rename) has a new inode."""
    stamps: list[FileStamp] = []
    for path in paths:
        try:
            status = os.stat(path)
        except OSError:
            stamps.append(None)
        else:
            stamps.append((status.st_mtime_ns, status.st_size, status.st_ino))
    return tuple(stamps)


class ChargerTLS:
    """The listener's TLS context, kept on the newest loadable version of the files.

    Give :attr:`listener` to the server; :meth:`check` may also be called directly (tests,
    a timer). ``clock`` is monotonic seconds.
    """

    def __init__(
        self,
        files: TLSFiles,
        *,
        clock: Callable[[], float] = time.monotonic,
        check_interval: float = CHECK_INTERVAL,
    ) -> None:
        self.files = files
        self._clock = clock
        self._interval = check_interval
        self._stamps = file_stamps(files.paths)
        try:
            self.listener = server_context(files)
        except OSError as exc:
            raise ChargerTLSError(
                f"OYE_TLS_CERT / OYE_TLS_KEY / OYE_TLS_CLIENT_CA: cannot load {_names(files)}: "
                f"{exc}"
            ) from None
        self.listener.sni_callback = self._on_client_hello
        #: The context new handshakes get: the listener until the files change.
        self.current = self.listener
        self._next_check = clock() + check_interval

    def check(self) -> bool:
        """Re-read the files if they changed since the last look (at most once per
        interval); True when a new certificate is now in use."""
        now = self._clock()
        if now < self._next_check:
            return False
        self._next_check = now + self._interval
        stamps = file_stamps(self.files.paths)
        if stamps == self._stamps:
            return False
        self._stamps = stamps
        try:
            context = server_context(self.files)
        except OSError as exc:
            log.error(
                "charger TLS: the changed %s do not load (%s); keeping the previous certificate",
                _names(self.files),
                exc,
            )
            return False
        self.current = context
        log.info("charger TLS: loaded the changed %s for new connections", _names(self.files))
        return True

    def _on_client_hello(
        self, connection: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        try:
            self.check()
            if connection.context is not self.current:
                connection.context = self.current
        except Exception:
            # An error here would abort the handshake; the previous context still works.
            log.exception("charger TLS: reloading the certificate failed")


def _names(files: TLSFiles) -> str:
    return ", ".join(str(path) for path in files.paths)
