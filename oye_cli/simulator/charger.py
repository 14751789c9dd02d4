"""A simulated charger: one websocket to a CSMS (or the proxy), an OCPP 1.6 or 2.0.1 peer on it.

::

    url = charger_url("ws://127.0.0.1:9000/ocpp", "CP 1")  # .../ocpp/CP%201
    async with SimulatedCharger(url, "CP 1", version="2.0.1", password="s3cret-pass") as cp:
        await cp.boot()
        await cp.status(1, "Available")
        async with asyncio.timeout(5):
            frame = await cp.frames.wait_for(is_call("GetVariables"))

Calls return the CSMS's answer as the ``ocpp`` ``call_result`` dataclass (nested parts as
snake_case dicts); a CALLERROR is raised as ``ocpp.exceptions.OCPPError``. What the CSMS
sends is answered by the version's peer (:mod:`.v16`, :mod:`.v201`), which keeps state in
:attr:`SimulatedCharger.state`. Every frame in and out is in :attr:`SimulatedCharger.frames`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Coroutine, Iterable
from decimal import Decimal
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from oye_cli.simulator.configuration import ConfigKey, default_configuration
from oye_cli.simulator.device_model import DeviceModel, Variable, default_variables
from oye_cli.simulator.frame_log import FrameLog, RecordingConnection
from oye_cli.simulator.ocpp_peer import utc_now
from oye_cli.simulator.state import ChargerState, Clock
from oye_cli.simulator.v16 import ChargerV16
from oye_cli.simulator.v201 import ChargerV201

logger = logging.getLogger(__name__)

Version = Literal["1.6", "2.0.1"]
SUBPROTOCOL: dict[str, str] = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1"}


class SimulatorError(RuntimeError):
    """The simulated charger was used wrongly (not connected, wrong version)."""


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait until every one has ended.

    A task is cancelled again while it runs on: in Python 3.11 ``asyncio.wait_for`` (which
    ``ocpp`` waits for answers with) loses a cancellation that arrives together with the
    answer, and the task would carry on as if never cancelled.
    """
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.1)


def charger_url(base: str, charge_point_id: str) -> str:
    """The charger's URL: ``base`` + ``/`` + the id percent-encoded as one path segment."""
    return f"{base.rstrip('/')}/{quote(charge_point_id, safe='')}"


def basic_authorization(username: str, password: str | bytes) -> str:
    """An ``Authorization: Basic`` value; a ``bytes`` password is sent as raw octets (1.6)."""
    secret = password if isinstance(password, bytes) else password.encode()
    return "Basic " + base64.b64encode(username.encode() + b":" + secret).decode("ascii")


class SimulatedCharger:
    """A charger that connects on ``async with`` and runs its OCPP peer until exit."""

    def __init__(
        self,
        url: str,
        charge_point_id: str,
        *,
        version: Version = "1.6",
        password: str | bytes | None = None,
        subprotocols: list[str] | None = None,
        connectors: int = 2,
        max_current: Decimal | int = 32,
        response_timeout: float = 10.0,
        open_timeout: float = 5.0,
        ping_interval: float | None = 20.0,
        clock: Clock = utc_now,
        vendor: str = "OYE",
        model: str = "Simulator",
        frames: FrameLog | None = None,
    ) -> None:
        """``frames``: the log to record into (e.g. one with a ``limit`` and a listener)."""
        if version not in SUBPROTOCOL:
            raise ValueError(f"unsupported OCPP version {version!r}")
        self.url = url
        self.charge_point_id = charge_point_id
        self.version: Version = version
        self.password = password
        self.subprotocols = subprotocols if subprotocols is not None else [SUBPROTOCOL[version]]
        self.state = ChargerState.with_connectors(
            connectors, hardware_max_amps=Decimal(max_current), clock=clock
        )
        self.frames = frames if frames is not None else FrameLog()
        # What the CSMS configures survives reconnections (the peer is new each time).
        self.config = default_configuration(connectors) if version == "1.6" else None
        self.device_model = (
            DeviceModel(default_variables(charge_point_id)) if version == "2.0.1" else None
        )
        self.errors: list[BaseException] = []
        #: Set when the CSMS reset the whole charger; whoever runs it reboots it (the
        #: library alone keeps the socket up).
        self.reboot_requested = asyncio.Event()
        self._response_timeout = response_timeout
        self._open_timeout = open_timeout
        self._ping_interval = ping_interval
        self._vendor = vendor
        self._model = model
        self._connection: ClientConnection | None = None
        self._peer: ChargerV16 | ChargerV201 | None = None
        self._receiver: asyncio.Task[None] | None = None
        self._follow_ups: set[asyncio.Task[None]] = set()

    # -- life cycle ----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the websocket (handshake errors propagate, e.g. ``InvalidStatus`` 401/404)."""
        headers = {}
        if self.password is not None:
            headers["Authorization"] = basic_authorization(self.charge_point_id, self.password)
        self._connection = await connect(
            self.url,
            subprotocols=[Subprotocol(p) for p in self.subprotocols],
            additional_headers=headers,
            open_timeout=self._open_timeout,
            ping_interval=self._ping_interval,
        )
        recording = RecordingConnection(self._connection, self.frames)
        common: dict[str, Any] = {
            "state": self.state,
            "reboot": self.reboot_requested.set,
            "follow_up": self._start_follow_up,
            "response_timeout": self._response_timeout,
            "vendor": self._vendor,
            "model": self._model,
        }
        if self.version == "1.6":
            self._peer = ChargerV16(self.charge_point_id, recording, config=self.config, **common)
        else:
            self._peer = ChargerV201(
                self.charge_point_id, recording, device_model=self.device_model, **common
            )
        self._receiver = asyncio.create_task(self._receive(self._peer))

    async def _receive(self, peer: ChargerV16 | ChargerV201) -> None:
        try:
            await peer.start()
        except ConnectionClosed:
            logger.info("%s: connection closed", self.charge_point_id)

    def _start_follow_up(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(self._guard(work))
        self._follow_ups.add(task)
        task.add_done_callback(self._follow_ups.discard)

    async def _guard(self, work: Coroutine[Any, Any, Any]) -> None:
        try:
            await work
        except ConnectionClosed:
            logger.info("%s: follow-up cut short, connection closed", self.charge_point_id)
        except Exception as exc:
            logger.exception("%s: follow-up failed", self.charge_point_id)
            self.errors.append(exc)

    async def settle(self) -> None:
        """Wait until the follow-ups started so far (and those they start) have finished."""
        while self._follow_ups:
            await asyncio.wait(set(self._follow_ups))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the websocket and stop the peer and its follow-ups; idempotent."""
        for task in self._follow_ups:
            task.cancel()
        if self._connection is not None:
            await self._connection.close(code, reason)
        tasks = {*self._follow_ups, *([self._receiver] if self._receiver else [])}
        await cancel_and_wait(tasks)

    def drop(self) -> None:
        """Cut the TCP connection without a closing handshake (a charger losing power)."""
        self.connection.transport.abort()

    async def wait_closed(self) -> int | None:
        """Wait until the connection is closed; the close code the peer sent (``None``: none)."""
        await self.connection.wait_closed()
        return self.connection.close_code

    # -- what tests and users read -------------------------------------------------------

    @property
    def connection(self) -> ClientConnection:
        if self._connection is None:
            raise SimulatorError("not connected")
        return self._connection

    @property
    def peer(self) -> ChargerV16 | ChargerV201:
        if self._peer is None:
            raise SimulatorError("not connected")
        return self._peer

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the CSMS chose, ``None`` when it chose none."""
        return self.connection.subprotocol

    @property
    def heartbeat_interval(self) -> int:
        """Seconds between Heartbeats: HeartbeatInterval (1.6) or its 2.0.1 variable."""
        return int(self._setting("HeartbeatInterval", "OCPPCommCtrlr").value)

    @heartbeat_interval.setter
    def heartbeat_interval(self, seconds: int) -> None:
        self._setting("HeartbeatInterval", "OCPPCommCtrlr").value = str(seconds)

    @property
    def meter_interval(self) -> int:
        """Seconds between meter values in a transaction: MeterValueSampleInterval (1.6),
        SampledDataCtrlr.TxUpdatedInterval (2.0.1)."""
        return int(self._setting("MeterValueSampleInterval", "SampledDataCtrlr").value)

    @meter_interval.setter
    def meter_interval(self, seconds: int) -> None:
        self._setting("MeterValueSampleInterval", "SampledDataCtrlr").value = str(seconds)

    def _setting(self, key16: str, component: str) -> ConfigKey | Variable:
        if self.config is not None:
            return self.config[key16]
        assert self.device_model is not None
        name = "TxUpdatedInterval" if key16 == "MeterValueSampleInterval" else key16
        return self.device_model.get(component, name)

    @property
    def received(self) -> list[str]:
        return self.frames.received

    @property
    def sent(self) -> list[str]:
        return self.frames.sent

    # -- what the charger sends ----------------------------------------------------------

    async def call(self, payload: Any) -> Any:
        """Send any ``ocpp`` ``call`` dataclass of the charger's version."""
        return await self.peer.call(payload, suppress=False)

    async def send_raw(self, text: str) -> None:
        """Write ``text`` as one frame, unvalidated (recorded like any other frame)."""
        await RecordingConnection(self.connection, self.frames).send(text)

    async def boot(self, **fields: Any) -> Any:
        """BootNotification (1.6 fields or 2.0.1 ``reason`` + chargingStation fields)."""
        return await self.peer.boot(**fields)

    async def heartbeat(self) -> Any:
        return await self.peer.heartbeat()

    async def status(self, connector: int, status: str) -> Any:
        """StatusNotification; in 2.0.1 ``connector`` is the EVSE id (its connector is 1)."""
        return await self.peer.status(connector, status)

    async def meter_values(
        self, connector: int = 1, *, energy_wh: int | None = None, power_w: float | None = None
    ) -> Any:
        return await self.peer.meter_values(connector, energy_wh=energy_wh, power_w=power_w)

    async def authorize(self, id_tag: str) -> Any:
        return await self.peer.authorize(id_tag)

    async def data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: Any = None
    ) -> Any:
        return await self.peer.data_transfer(vendor_id, message_id, data)

    async def start_transaction(
        self, connector: int = 1, id_tag: str = "OYE-TAG", *, meter_start: int | None = None
    ) -> Any:
        """1.6 StartTransaction (2.0.1: use :meth:`transaction_event`)."""
        return await self._v16().start_transaction(connector, id_tag, meter_start=meter_start)

    async def stop_transaction(
        self,
        transaction_id: int | None = None,
        *,
        meter_stop: int | None = None,
        reason: str | None = None,
        connector: int | None = None,
    ) -> Any:
        """1.6 StopTransaction of ``transaction_id`` or the one on ``connector``."""
        return await self._v16().stop_transaction(
            transaction_id, meter_stop=meter_stop, reason=reason, connector=connector
        )

    async def transaction_event(self, event_type: str, **fields: Any) -> Any:
        """2.0.1 TransactionEvent; see :meth:`.v201.ChargerV201.transaction_event`."""
        peer = self.peer
        if not isinstance(peer, ChargerV201):
            raise SimulatorError("TransactionEvent is OCPP 2.0.1; use start/stop_transaction")
        return await peer.transaction_event(event_type, **fields)

    def _v16(self) -> ChargerV16:
        peer = self.peer
        if not isinstance(peer, ChargerV16):
            raise SimulatorError("Start/StopTransaction are OCPP 1.6; use transaction_event")
        return peer
