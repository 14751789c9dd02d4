"""A real CSMS for tests: ``ocpp`` peers behind a ``websockets`` server on 127.0.0.1.

::

    async with CsmsServer(passwords={"CP 1": "s3cret-pass"}) as csms:
        ...  # point a charger (or the proxy's upstream) at csms.url + "/" + quote(id)
        async with asyncio.timeout(5):
            charger = await csms.wait_for_charger("CP 1")
        result = await charger.call(ocpp.v16.call.GetConfiguration(key=["HeartbeatInterval"]))
        await csms.stop()   # the CSMS dies: listener closed, sockets closed with 1001
        await csms.start()  # back on the same port

Handshake, per the OCPP notes §2: the subprotocol is the first one in the *client's* list
that the server supports (none -> handshake without one, then close 1002); ``refuse`` maps
a charge point id to an HTTP status to answer instead; with ``passwords`` every charger must
send Basic auth with its id as username (else 401). Paths other than ``<path>/<id>`` get 404.
"""

from __future__ import annotations

import asyncio
import http
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from urllib.parse import unquote

import ocpp.messages
from ocpp.exceptions import InternalError
from ocpp.v16 import call_result as result16
from ocpp.v21 import call_result as result21
from ocpp.v201 import call_result as result201
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidHeader
from websockets.frames import CloseCode
from websockets.headers import build_www_authenticate_basic, parse_authorization_basic
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from oye_cli.simulator.frame_log import FrameLog, RecordingConnection
from oye_cli.simulator.ocpp_peer import (
    Ocpp16Peer,
    Ocpp21Peer,
    Ocpp201Peer,
    on,
    utc_iso,
    utc_now,
)
from oye_shared.frames import MessageType

# Validate inline instead of in the default thread pool: fewer moving parts in tests.
ocpp.messages.ASYNC_VALIDATION = False

DEFAULT_VERSIONS = ("ocpp1.6", "ocpp2.0.1", "ocpp2.1")


@dataclass
class Handshake:
    """One opening handshake the CSMS saw, and the HTTP status it answered."""

    charge_point_id: str
    path: str
    headers: Headers
    status: int = 101


@dataclass
class ChargerHandle:
    """One accepted charger connection, for CSMS-initiated calls and assertions."""

    charge_point_id: str
    path: str
    headers: Headers
    subprotocol: str
    connection: ServerConnection
    frames: FrameLog
    serial: int
    peer: Any = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    async def call(self, payload: Any, *, suppress: bool = False) -> Any:
        """Send an ``ocpp`` ``call`` dataclass; the result (a CALLERROR raises ``OCPPError``)."""
        return await self.peer.call(payload, suppress=suppress)

    async def send_raw(self, text: str) -> None:
        """Write ``text`` as one frame, unvalidated (recorded in :attr:`frames`)."""
        await RecordingConnection(self.connection, self.frames).send(text)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close this charger's socket from the CSMS side."""
        await self.connection.close(code, reason)

    async def wait_closed(self) -> int | None:
        """Wait until the socket is closed; the close code the charger side sent."""
        await self.closed.wait()
        return self.connection.close_code

    def calls(self, action: str) -> list[dict[str, Any]]:
        """The payloads of every ``action`` CALL received from the charger, in order."""
        return [
            f.payload
            for f in self.frames.frames
            if f.direction == "received"
            and f.message_type is MessageType.CALL
            and f.action == action
        ]


class CsmsServer:
    """A CSMS on 127.0.0.1 that accepts 1.6, 2.0.1 and 2.1 chargers; see the module doc."""

    def __init__(
        self,
        *,
        versions: Sequence[str] = DEFAULT_VERSIONS,
        passwords: dict[str, str | bytes] | None = None,
        refuse: dict[str, int] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/ocpp",
        response_timeout: float = 10.0,
        boot_status: str = "Accepted",
        heartbeat_interval: int = 300,
        first_transaction_id: int = 1,
    ) -> None:
        self.versions = tuple(versions)
        self.passwords = passwords
        self.refuse = dict(refuse or {})
        self.host = host
        self.port = port
        self.path = path.rstrip("/")
        self.response_timeout = response_timeout
        self.boot_status = boot_status
        self.heartbeat_interval = heartbeat_interval
        #: Actions answered with a CALLERROR (InternalError), to play a CSMS in trouble.
        self.failing: set[str] = set()
        #: The idTagInfo status of every StartTransaction answer.
        self.start_status = "Accepted"
        self.handshakes: list[Handshake] = []
        self.chargers: dict[str, list[ChargerHandle]] = {}
        self._transaction_ids = itertools.count(first_transaction_id)
        self._serials = itertools.count(1)
        self._server: Server | None = None
        self._waiters: list[tuple[str, int, asyncio.Future[ChargerHandle]]] = []

    @property
    def url(self) -> str:
        """The endpoint URL; a charger appends ``/`` + its percent-encoded id."""
        return f"ws://{self.host}:{self.port}{self.path}"

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen (again): on the port of the first start, so chargers find us back."""
        if self._server is not None:
            return
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            select_subprotocol=self._select_subprotocol,
            process_request=self._process_request,
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]

    async def stop(self, code: int = CloseCode.GOING_AWAY) -> None:
        """Stop listening and close every charger socket with ``code``; idempotent."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close(code=code)
        await server.wait_closed()

    def drop_all(self) -> None:
        """Cut every charger's TCP connection without a closing handshake (a crash)."""
        for handle in self.open_handles():
            handle.connection.transport.abort()

    def open_handles(self) -> list[ChargerHandle]:
        return [h for handles in self.chargers.values() for h in handles if not h.closed.is_set()]

    def next_transaction_id(self) -> int:
        return next(self._transaction_ids)

    async def wait_for_charger(
        self, charge_point_id: str, *, newer_than: ChargerHandle | None = None
    ) -> ChargerHandle:
        """The open connection of ``charge_point_id`` (newer than ``newer_than``), waiting.

        Bound the wait with ``asyncio.timeout``.
        """
        after = newer_than.serial if newer_than else 0
        for handle in reversed(self.chargers.get(charge_point_id, [])):
            if handle.serial > after and not handle.closed.is_set():
                return handle
        future: asyncio.Future[ChargerHandle] = asyncio.get_running_loop().create_future()
        waiter = (charge_point_id, after, future)
        self._waiters.append(waiter)
        try:
            return await future
        finally:
            self._waiters.remove(waiter)

    # -- handshake -----------------------------------------------------------------------

    def _select_subprotocol(
        self, connection: ServerConnection, offered: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        """The first of the client's offers that we speak; ``None`` (no header) if none."""
        return next((p for p in offered if p in self.versions), None)

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        target = request.path.split("?", 1)[0]
        prefix, _, segment = target.rpartition("/")
        charge_point_id = unquote(segment)
        handshake = Handshake(charge_point_id, request.path, request.headers)
        self.handshakes.append(handshake)
        response = None
        if prefix != self.path or not segment:
            response = connection.respond(http.HTTPStatus.NOT_FOUND, "Unknown endpoint\n")
        elif charge_point_id in self.refuse:
            response = connection.respond(self.refuse[charge_point_id], "Refused\n")
        elif self.passwords is not None and not self._authorized(charge_point_id, request):
            response = connection.respond(http.HTTPStatus.UNAUTHORIZED, "Invalid credentials\n")
            response.headers["WWW-Authenticate"] = build_www_authenticate_basic("OCPP")
        if response is not None:
            handshake.status = response.status_code
        return response

    def _authorized(self, charge_point_id: str, request: Request) -> bool:
        """Basic auth: username = the decoded id, password as configured (text or octets)."""
        assert self.passwords is not None
        try:
            username, password = parse_authorization_basic(request.headers["Authorization"])
        except (KeyError, InvalidHeader):
            return False
        expected = self.passwords.get(charge_point_id)
        if username != charge_point_id or expected is None:
            return False
        wanted = expected if isinstance(expected, bytes) else expected.encode()
        return password.encode(errors="surrogateescape") == wanted

    # -- connections ---------------------------------------------------------------------

    async def _handle(self, connection: ServerConnection) -> None:
        assert connection.request is not None
        if connection.subprotocol is None:
            await connection.close(CloseCode.PROTOCOL_ERROR, "no common subprotocol")
            return
        target = connection.request.path.split("?", 1)[0]
        frames = FrameLog()
        handle = ChargerHandle(
            charge_point_id=unquote(target.rpartition("/")[2]),
            path=connection.request.path,
            headers=connection.request.headers,
            subprotocol=connection.subprotocol,
            connection=connection,
            frames=frames,
            serial=next(self._serials),
        )
        peer_class = _PEERS[connection.subprotocol]
        handle.peer = peer_class(
            handle.charge_point_id,
            RecordingConnection(connection, frames),
            csms=self,
            response_timeout=self.response_timeout,
        )
        self.chargers.setdefault(handle.charge_point_id, []).append(handle)
        self._announce(handle)
        try:
            await handle.peer.start()
        except ConnectionClosed:
            pass
        finally:
            handle.closed.set()

    def _announce(self, handle: ChargerHandle) -> None:
        for charge_point_id, after, future in self._waiters:
            matches = charge_point_id == handle.charge_point_id and handle.serial > after
            if matches and not future.done():
                future.set_result(handle)


# -- the CSMS's answers -------------------------------------------------------------------


class _CsmsPeer:
    """What every CSMS peer knows: its server (transaction ids, boot answer)."""

    def __init__(self, charge_point_id: str, connection: Any, *, csms: CsmsServer, **kw: Any):
        super().__init__(charge_point_id, connection, **kw)  # type: ignore[call-arg]
        self.csms = csms

    def _now(self) -> str:
        return utc_iso(utc_now())

    async def _handle_call(self, msg: Any) -> Any:
        if msg.action in self.csms.failing:
            raise InternalError(description=f"{msg.action} failed on purpose (test)")
        return await super()._handle_call(msg)  # type: ignore[misc]


class Csms16(_CsmsPeer, Ocpp16Peer):
    """The CSMS side of a 1.6 connection."""

    @on("BootNotification")
    def on_boot_notification(self, **_: Any) -> Any:
        interval = self.csms.heartbeat_interval
        return result16.BootNotification(self._now(), interval, self.csms.boot_status)

    @on("Heartbeat")
    def on_heartbeat(self, **_: Any) -> Any:
        return result16.Heartbeat(self._now())

    @on("Authorize")
    def on_authorize(self, **_: Any) -> Any:
        return result16.Authorize(id_tag_info={"status": "Accepted"})

    @on("StartTransaction")
    def on_start_transaction(self, **_: Any) -> Any:
        return result16.StartTransaction(
            transaction_id=self.csms.next_transaction_id(),
            id_tag_info={"status": self.csms.start_status},
        )

    @on("StopTransaction")
    def on_stop_transaction(self, id_tag: str | None = None, **_: Any) -> Any:
        return result16.StopTransaction(id_tag_info={"status": "Accepted"} if id_tag else None)

    @on("DataTransfer")
    def on_data_transfer(self, **_: Any) -> Any:
        return result16.DataTransfer("Accepted")

    @on("StatusNotification")
    def on_status_notification(self, **_: Any) -> Any:
        return result16.StatusNotification()

    @on("MeterValues")
    def on_meter_values(self, **_: Any) -> Any:
        return result16.MeterValues()

    @on("FirmwareStatusNotification")
    def on_firmware_status_notification(self, **_: Any) -> Any:
        return result16.FirmwareStatusNotification()

    @on("DiagnosticsStatusNotification")
    def on_diagnostics_status_notification(self, **_: Any) -> Any:
        return result16.DiagnosticsStatusNotification()

    @on("SecurityEventNotification")
    def on_security_event_notification(self, **_: Any) -> Any:
        return result16.SecurityEventNotification()


class _Csms2x(_CsmsPeer):
    """The CSMS side of a 2.0.1 or 2.1 connection; ``results`` is the version's module."""

    results: Any

    @on("BootNotification")
    def on_boot_notification(self, **_: Any) -> Any:
        interval = self.csms.heartbeat_interval
        return self.results.BootNotification(self._now(), interval, self.csms.boot_status)

    @on("Heartbeat")
    def on_heartbeat(self, **_: Any) -> Any:
        return self.results.Heartbeat(self._now())

    @on("Authorize")
    def on_authorize(self, **_: Any) -> Any:
        return self.results.Authorize(id_token_info={"status": "Accepted"})

    @on("TransactionEvent")
    def on_transaction_event(self, id_token: dict[str, Any] | None = None, **_: Any) -> Any:
        """E01.FR.12: idTokenInfo when the request carried an idToken."""
        info = {"status": "Accepted"} if id_token else None
        return self.results.TransactionEvent(id_token_info=info)

    @on("DataTransfer")
    def on_data_transfer(self, **_: Any) -> Any:
        return self.results.DataTransfer("Accepted")

    @on("StatusNotification")
    def on_status_notification(self, **_: Any) -> Any:
        return self.results.StatusNotification()

    @on("MeterValues")
    def on_meter_values(self, **_: Any) -> Any:
        return self.results.MeterValues()

    @on("NotifyReport")
    def on_notify_report(self, **_: Any) -> Any:
        return self.results.NotifyReport()

    @on("ReportChargingProfiles")
    def on_report_charging_profiles(self, **_: Any) -> Any:
        return self.results.ReportChargingProfiles()

    @on("FirmwareStatusNotification")
    def on_firmware_status_notification(self, **_: Any) -> Any:
        return self.results.FirmwareStatusNotification()

    @on("LogStatusNotification")
    def on_log_status_notification(self, **_: Any) -> Any:
        return self.results.LogStatusNotification()

    @on("SecurityEventNotification")
    def on_security_event_notification(self, **_: Any) -> Any:
        return self.results.SecurityEventNotification()

    @on("NotifyEvent")
    def on_notify_event(self, **_: Any) -> Any:
        return self.results.NotifyEvent()


class Csms201(_Csms2x, Ocpp201Peer):
    """The CSMS side of a 2.0.1 connection."""

    results = result201


class Csms21(_Csms2x, Ocpp21Peer):
    """The CSMS side of a 2.1 connection (``ocpp``'s 2.1 key-conversion bugs apply)."""

    results = result21


_PEERS: dict[str, type[_CsmsPeer]] = {
    "ocpp1.6": Csms16,
    "ocpp2.0.1": Csms201,
    "ocpp2.1": Csms21,
}
