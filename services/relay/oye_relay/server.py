"""Accepting chargers: the handshake, the upstream opened before it completes, the registry.

The charger's handshake completes only after the CSMS's: the charger then gets the
subprotocol the CSMS chose, or the CSMS's refusal (401, 404, ...) as its own. A CSMS that
cannot be reached within ``OYE_UPSTREAM_CONNECT_TIMEOUT`` does not keep the charger out:
it is accepted and the upstream is retried in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from http import HTTPStatus
from typing import Any

from nats.aio.client import Client
from websockets.frames import CloseCode

from oye_relay.admission import (
    Admission,
    AuthMode,
    Refusal,
    charge_point_id_from_path,
    choose_standalone_subprotocol,
    forwards_authorization,
    offered_subprotocols,
)
from oye_relay.authorization import OfflineAuthorization
from oye_relay.confirmations import Confirmations
from oye_relay.fleet import FleetState
from oye_relay.gatekeeper import Gatekeeper
from oye_relay.keepalive import Keepalive
from oye_relay.legs import Leg, WebSocketLeg
from oye_relay.live_config import LiveConfig
from oye_relay.metrics import RelayMetrics
from oye_relay.offline_queue import NATS_TIMEOUT, ChargerQueue, NatsTrouble, ReplayStore
from oye_relay.pending import APPROVED_CLOSE_CODE, hold_pending
from oye_relay.publisher import Publisher
from oye_relay.rate import CallRate
from oye_relay.server_handshake import (
    Answer,
    BadRequest,
    ServerHandshake,
    UpgradeRequest,
    negotiate_extensions,
)
from oye_relay.session import REPLACED_REASON, ChargerSession
from oye_relay.tls import ChargerTLS, TLSFiles
from oye_relay.tracker import ChargerTracker
from oye_relay.traffic import TrafficTap
from oye_relay.transaction_ids import TransactionIds
from oye_relay.transaction_map import TransactionMap
from oye_relay.upstream import (
    UpstreamOptions,
    UpstreamRefused,
    UpstreamUnreachable,
    open_upstream,
)
from oye_shared.headers import now_rfc3339
from oye_shared.kv_mirror import BucketMirror
from oye_shared.limits import LimitIds, stored_max_power
from oye_shared.replay import Backlog
from oye_shared.settings import Settings
from oye_shared.state import OCPP_VERSIONS, ChargerState, ChargerStatus
from oye_shared.subjects import EventKind, Subjects, kv_key

log = logging.getLogger(__name__)

#: Headers of a CSMS refusal that the charger needs to see too.
PASSED_BACK_HEADERS = ("WWW-Authenticate", "Retry-After")


@dataclass(slots=True)
class Handshake:
    """What the handshake learned, carried from the admission to the session."""

    charge_point_id: str
    offered: list[str]
    authorization: str | None
    user_agent: str | None
    upstream_options: UpstreamOptions | None = None
    upstream: Leg | None = None
    #: What an earlier connection left for the CSMS (offline replay), read meanwhile.
    backlog: Backlog | None = None
    transaction_map: TransactionMap | None = None
    remote_host: str = ""
    #: Not approved yet: held and answered Pending (OYE_UNKNOWN_CHARGERS=pending).
    pending: bool = False

    def forwarded_authorization(self, mode: AuthMode) -> str | None:
        return self.authorization if forwards_authorization(mode) else None


class Relay:
    """The relay of one process: accepts chargers on ``/ocpp/{id}`` and runs their sessions."""

    def __init__(self, settings: Settings, publisher: Publisher) -> None:
        self.settings = settings
        self.publisher = publisher
        self.subjects = Subjects(settings.subject_prefix)
        self.sessions: dict[str, ChargerSession] = {}
        #: Sockets whose handshake is not answered yet (server_handshake.py).
        self._shaking: set[ServerHandshake] = set()
        #: Pings every charger and CSMS leg of this relay (one task, not two per charger).
        self.keepalive = Keepalive(interval=settings.ping_interval, timeout=settings.ping_timeout)
        self.live_config = LiveConfig(settings, self.keepalive)
        self.nc: Client | None = None
        #: Each connect's inject subscription confirmed by NATS before its frames are handled.
        self._confirmations = Confirmations(lambda: self.nc)
        #: The persistent limits (``{P}_limits``), once NATS is there; read at every boot,
        #: so followed into memory.
        self.limits: BucketMirror | None = None
        self.limit_ids = LimitIds(settings.limit_profile_id, settings.limit_stack_level)
        self.transaction_ids = TransactionIds()
        #: Who may connect; chargers waiting for the owner's approval.
        self.gate = Gatekeeper(settings)
        self.gate.on_approved = self._approved
        self._pending: dict[str, Leg] = {}
        self._closing: set[asyncio.Task[None]] = set()
        #: Chargers whose session is starting, and the sessions winding up (see _relay).
        self._opening: set[Leg] = set()
        self._winding_up: set[asyncio.Task[None]] = set()
        #: The offline replay queues and 1.6 transaction maps, once NATS is there.
        self.replay_store: ReplayStore | None = None
        self.fleet = FleetState(
            settings.relay_id, settings.subject_prefix, lambda: len(self.sessions)
        )
        self.metrics = RelayMetrics(
            sessions=self.sessions.values,
            publisher=publisher,
            nats_connected=lambda: self.nc is not None and self.nc.is_connected,
        )
        # What every session asks of the relay, made once: a lambda or bound method made
        # per charger costs 64-200 bytes for as long as it is connected.
        self._current_upstream_options = lambda: self.upstream_options
        self._current_replay_store = lambda: self.replay_store
        self._auto_charge_enabled = lambda: self.live_config.config.auto_charge_enabled
        self._auto_charge_tag_now = self._auto_charge_tag
        self._offline_id_tags = settings.offline_id_tag_set
        self._fleet_changed = self.fleet.changed

    async def attach_bus(self, nc: Client) -> None:
        """NATS is there: take injections for every charger held now and later."""
        self.nc = nc
        for session in list(self.sessions.values()):
            await session.attach_bus(nc, self.subjects)

    @property
    def upstream_options(self) -> UpstreamOptions | None:
        """How to reach the CSMS for a new connection (follows the live configuration)."""
        return self.live_config.upstream_options()

    async def stored_limit(self, charge_point_id: str) -> float | None:
        """The persistent limit stored for this charger (A), or None."""
        if self.limits is None:
            return None
        entry = await self.limits.get(kv_key(charge_point_id))
        return stored_max_power(entry.value if entry is not None else None)

    def _auto_charge_tag(self) -> str | None:
        config = self.live_config.config
        return config.default_id_tag if config.auto_charge_enabled else None

    def serve(self) -> contextlib.AbstractAsyncContextManager[asyncio.Server]:
        """Listen for chargers while in the block; ``wss://`` when ``OYE_TLS_CERT`` is set
        (raises ``ChargerTLSError`` if the files do not load)."""
        files = TLSFiles.from_settings(self.settings)
        tls = ChargerTLS(files) if files is not None else None
        if files is not None:
            log.info(
                "chargers connect with TLS, security profile %d: wss://%s:%d/ocpp/{chargePointId}"
                " (certificate %s%s; re-read when the files change)",
                files.security_profile,
                self.settings.bind_host,
                self.settings.ocpp_port,
                files.certificate,
                f", client certificates signed by {files.client_ca} required"
                if files.client_ca is not None
                else "",
            )
        return self._listening(tls.listener if tls is not None else None)

    @contextlib.asynccontextmanager
    async def _listening(self, tls: ssl.SSLContext | None) -> AsyncIterator[asyncio.Server]:
        # The charger's own handshake time, plus the CSMS's that it waits for.
        timeout = self.settings.handshake_timeout + self.settings.upstream_connect_timeout
        handshake = partial(
            ServerHandshake, self._decide, timeout, self.settings.max_frame_bytes, self._shaking
        )
        server = await asyncio.get_running_loop().create_server(
            handshake,
            self.settings.bind_host,
            self.settings.ocpp_port,
            ssl=tls,
            # A charger storm after a power cut: the default 100 made the kernel drop
            # connection attempts (docs/PERFORMANCE.md); chargers then wait out a backoff.
            backlog=4096,
            # Several relay processes of this box share the port only when asked
            # (OYE_OCPP_REUSE_PORT, set by `oye up` for OYE_RELAY_PROCESSES > 1).
            reuse_port=self.settings.ocpp_reuse_port,
        )
        try:
            yield server
        finally:
            server.close()
            for shaking in list(self._shaking):
                shaking.abort()  # its decision is cancelled as its socket goes

    # The handshake (server_handshake.py has read a valid upgrade request).

    async def _decide(self, shake: ServerHandshake, request: UpgradeRequest) -> None:
        """Refuse the charger, or accept it and start its session."""
        try:
            extensions = negotiate_extensions(request.headers)
        except BadRequest as bad:
            shake.refuse(bad.answer)
            return
        try:
            decided = await self._admit_request(shake, request)
        except Exception:  # a bug of ours: the charger hears of it, as websockets did
            log.exception("the handshake for %r failed", request.path[:200])
            shake.refuse(Answer(500, "Failed to open a WebSocket connection.\n"))
            return
        if isinstance(decided, Answer):
            shake.refuse(decided)
            return
        charger = shake.accept(request, self._subprotocol(decided), extensions)
        if charger is None:  # the charger left as the relay decided
            await self._forget(decided)
            return
        await self._opened(charger, decided)

    async def _admit_request(
        self, shake: ServerHandshake, request: UpgradeRequest
    ) -> Answer | Handshake:
        """The charger's id, admission and upstream: a refusal, or what the session needs.
        Once admitted, the caller owns the handshake (see :meth:`_forget`)."""
        found = charge_point_id_from_path(request.path, max_length=self.settings.max_id_length)
        if isinstance(found, Refusal):
            log.info("refused a handshake for %r: %s", request.path[:200], found.reason)
            return Answer(found.status, found.reason + "\n")
        headers = request.headers
        handshake = Handshake(
            charge_point_id=found,
            offered=offered_subprotocols(headers.get_all("Sec-WebSocket-Protocol")),
            authorization=headers.get("Authorization"),
            user_agent=headers.get("User-Agent"),
            remote_host=_remote_host(shake.remote_address),
        )
        handshake.upstream_options = self.upstream_options
        refused = await self._admit(handshake)
        if refused is not None:
            return refused
        self.gate.connections[handshake.remote_host] += 1
        try:
            return await self._open_upstream(handshake)
        except BaseException:
            await self._forget(handshake)
            raise

    async def _open_upstream(self, handshake: Handshake) -> Answer | Handshake:
        if handshake.pending or handshake.upstream_options is None:
            # Pending: held here, no CSMS hears of it until the owner approves it.
            return handshake
        found = handshake.charge_point_id
        mode = self.gate.mode(has_upstream=True)
        # Read during the CSMS's handshake, so no frame ever waits for it.
        replay_state = asyncio.create_task(self._replay_state(handshake))
        try:
            handshake.upstream = await open_upstream(
                handshake.upstream_options,
                found,
                subprotocols=handshake.offered,
                authorization=handshake.forwarded_authorization(mode),
                user_agent=handshake.user_agent,
            )
        except UpstreamRefused as refusal:
            replay_state.cancel()
            log.info("%r: CSMS refused the handshake (HTTP %d)", found, refusal.status)
            await self._forget(handshake)
            return self._pass_back(refusal)
        except UpstreamUnreachable as exc:
            if self.settings.offline_mode == "close":
                replay_state.cancel()
                log.warning("%r: CSMS unreachable (%s); refusing the charger", found, exc)
                await self._forget(handshake)
                return Answer(503, "CSMS unreachable; try again later\n")
            log.warning("%r: CSMS unreachable at connect (%s); accepting", found, exc)
        except BaseException:
            replay_state.cancel()  # the charger left, or the relay stops: not needed
            raise
        await replay_state
        return handshake

    async def _forget(self, handshake: Handshake) -> None:
        """An admitted charger that will not be accepted: its count, its upstream."""
        if handshake.remote_host in self.gate.connections:
            self._disconnected(handshake.remote_host)
        if handshake.upstream is not None:
            upstream, handshake.upstream = handshake.upstream, None
            await upstream.close(1001, "charger handshake failed")

    async def _admit(self, handshake: Handshake) -> Answer | None:
        """Refuse a charger that may not connect (an answer), or let it in (None)."""
        cp, host = handshake.charge_point_id, handshake.remote_host
        if (wait := self.gate.throttled(host)) is not None:
            return Answer(
                429, "too many failed attempts; try again later\n", {"Retry-After": str(wait)}
            )
        if self.gate.connections[host] >= self.settings.max_connections_per_address:
            log.warning("%r: refused: too many connections from %s", cp, host)
            return Answer(429, "too many connections from this address\n")
        decision = await self.gate.check(
            cp, handshake.authorization, has_upstream=handshake.upstream_options is not None
        )
        if isinstance(decision, Refusal):
            if decision.status in (401, 403):
                self.gate.failed(host)
            self._event(
                cp, EventKind.ADMISSION_REFUSED, status=decision.status, reason=decision.reason
            )
            log.warning("%r: refused from %s: %s", cp, host, decision.reason)
            answer = Answer(decision.status, decision.reason + "\n")
            if decision.status == 401:
                answer.headers["WWW-Authenticate"] = 'Basic realm="OYE Proxy", charset="UTF-8"'
            return answer
        if decision is Admission.PENDING:
            handshake.pending = True
            await self.gate.record_pending(cp, handshake.authorization, host)
            self._event(cp, EventKind.PENDING, remoteAddress=host)
            log.info("%r: not approved yet; held pending (from %s)", cp, host)
        return None

    def _event(self, charge_point_id: str, kind: EventKind, **details: Any) -> None:
        """An event about a charger that has no session (yet)."""
        TrafficTap(
            publisher=self.publisher,
            subjects=self.subjects,
            charge_point_id=charge_point_id,
            relay_id=self.settings.relay_id,
            mask_id_tags=self.settings.mask_id_tags,
            session_id="",
        ).event(kind, **details)

    async def _replay_state(self, handshake: Handshake) -> None:
        """The charger's offline queue depth and transaction map, if NATS can tell."""
        store = self.replay_store
        if store is None:
            return
        cp = handshake.charge_point_id
        try:
            # Both at once: each may wait for NATS to tell its stream's last sequence.
            async with asyncio.timeout(NATS_TIMEOUT), asyncio.TaskGroup() as reads:
                backlog = reads.create_task(store.backlog(cp))
                transaction_map = reads.create_task(store.transaction_map(cp))
        except* (*NatsTrouble, ValueError) as trouble:
            log.warning(
                "%r: cannot read the offline replay queue now: %r", cp, trouble.exceptions[0]
            )
        else:
            handshake.backlog = backlog.result()
            handshake.transaction_map = transaction_map.result()
        if handshake.backlog is not None and handshake.backlog.depth:
            log.info("%r: %d message(s) wait for the CSMS", cp, handshake.backlog.depth)

    @staticmethod
    def _pass_back(refusal: UpstreamRefused) -> Answer:
        status = refusal.status
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Refused"
        answer = Answer(status, f"CSMS refused the connection: {reason}\n")
        for name in PASSED_BACK_HEADERS:
            if (value := refusal.headers.get(name)) and "\r" not in value and "\n" not in value:
                answer.headers[name] = value
        return answer

    @staticmethod
    def _subprotocol(handshake: Handshake) -> str | None:
        if handshake.upstream is not None:
            chosen = handshake.upstream.subprotocol
            return chosen if chosen and chosen in handshake.offered else None
        return choose_standalone_subprotocol(handshake.offered)

    def _disconnected(self, host: str) -> None:
        self.gate.connections[host] -= 1
        if self.gate.connections[host] <= 0:
            del self.gate.connections[host]

    # The connection.

    async def _opened(self, charger: WebSocketLeg, handshake: Handshake) -> None:
        if charger.subprotocol is None and (handshake.offered or handshake.upstream is None):
            # No common subprotocol: the handshake completed without one; close (OCPP-J).
            try:
                if handshake.upstream is not None:
                    await handshake.upstream.close(1000, "no common subprotocol")
                await charger.close(1002, "no common OCPP subprotocol")
            finally:
                self._disconnected(handshake.remote_host)
            return
        self.keepalive.watch(charger)
        if handshake.pending:
            try:
                await self._hold_pending(charger, handshake)
            finally:
                self._disconnected(handshake.remote_host)
            return
        await self._relay(charger, handshake)
        # The session ends by itself once the charger has gone: this task ends now.

    async def _hold_pending(self, charger: Leg, handshake: Handshake) -> None:
        cp = handshake.charge_point_id
        tap = TrafficTap(
            publisher=self.publisher,
            subjects=self.subjects,
            charge_point_id=cp,
            relay_id=self.settings.relay_id,
            mask_id_tags=self.settings.mask_id_tags,
            session_id=uuid.uuid4().hex,
            subprotocol=charger.subprotocol or "",
        )
        self._pending[cp] = charger
        try:
            await hold_pending(charger, tap)
        finally:
            if self._pending.get(cp) is charger:
                del self._pending[cp]

    def _approved(self, charge_point_id: str) -> None:
        """The owner approved a charger: a pending connection reconnects to be admitted."""
        charger = self._pending.pop(charge_point_id, None)
        if charger is not None:
            log.info(
                "%r approved; closing its pending connection so it reconnects", charge_point_id
            )
            closing = asyncio.create_task(charger.close(APPROVED_CLOSE_CODE, "approved; reconnect"))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)

    async def _relay(self, charger: Leg, handshake: Handshake) -> None:
        """Start the charger's session. It ends by itself once the charger has gone
        (:meth:`_charger_left`): nothing waits for it meanwhile."""
        session = None
        self._opening.add(charger)
        try:
            session = await self._open_session(charger, handshake)
        except Exception:  # as websockets logs a handler that failed
            log.exception("%r: the session failed to start", handshake.charge_point_id)
            await charger.close(CloseCode.INTERNAL_ERROR)
        finally:
            self._opening.discard(charger)
            if session is None:
                self._disconnected(handshake.remote_host)
        if session is None:
            return
        charger.on_closed(partial(self._charger_left, session, handshake.remote_host))
        try:
            session.start()
        except Exception:  # a bug of ours: the charger goes, and its session is wound up
            log.exception("%r: the session failed to start", handshake.charge_point_id)
            await charger.close(CloseCode.INTERNAL_ERROR)

    def _charger_left(self, session: ChargerSession, host: str) -> None:
        task = asyncio.create_task(
            self._wind_up(session, host), name=f"wind up {session.charge_point_id!r}"
        )
        self._winding_up.add(task)
        task.add_done_callback(self._winding_up.discard)

    async def _wind_up(self, session: ChargerSession, host: str) -> None:
        cp, charger = session.charge_point_id, session.charger
        try:
            await session.wind_up()
        except Exception:
            log.exception("%r: winding up the session failed", cp)
        finally:
            self._disconnected(host)
            self._unregister(session)
            self.fleet.gone(session.tracker.state)
            session.tap.event(
                EventKind.DISCONNECTED, code=charger.close_code, reason=charger.close_reason
            )
            log.info("%r disconnected (%s)", cp, charger.close_code)

    async def _open_session(self, charger: Leg, handshake: Handshake) -> ChargerSession:
        cp = handshake.charge_point_id
        session_id = uuid.uuid4().hex
        remote = _remote_address(charger)
        tracker = ChargerTracker(
            ChargerState(
                charge_point_id=cp,
                status=ChargerStatus.ONLINE,
                relay=self.settings.relay_id,
                session_id=session_id,
                subprotocol=charger.subprotocol,
                ocpp_version=OCPP_VERSIONS.get(charger.subprotocol or ""),
                remote_address=remote,
                connected_since=now_rfc3339(),
                upstream="none"
                if handshake.upstream_options is None
                else ("up" if handshake.upstream is not None else "down"),
            )
        )
        tap = TrafficTap(
            publisher=self.publisher,
            subjects=self.subjects,
            charge_point_id=cp,
            relay_id=self.settings.relay_id,
            mask_id_tags=self.settings.mask_id_tags,
            session_id=session_id,
            subprotocol=charger.subprotocol or "",
            metrics=self.metrics,
        )
        session = ChargerSession(
            charger=charger,
            charge_point_id=cp,
            tap=tap,
            upstream=handshake.upstream,
            upstream_options=handshake.upstream_options,
            current_upstream_options=self._current_upstream_options,
            offered_subprotocols=handshake.offered,
            authorization=handshake.forwarded_authorization(
                self.gate.mode(has_upstream=handshake.upstream_options is not None)
            ),
            user_agent=handshake.user_agent,
            backoff_max=self.settings.upstream_backoff_max,
            close_when_offline=self.settings.offline_mode == "close",
            call_timeout=self.settings.inject_timeout,
            tracker=tracker,
            on_state_change=self._fleet_changed,
            transaction_ids=self.transaction_ids,
            auto_charge_tag=self._auto_charge_tag_now,
            limit_ids=self.limit_ids,
            failsafe_limit=self.settings.failsafe_limit,
            stored_limit=partial(self.stored_limit, cp),
            queue=ChargerQueue(
                cp,
                self._current_replay_store,
                backlog=handshake.backlog,
                subprotocol=charger.subprotocol or "",
            ),
            transaction_map=handshake.transaction_map,
            replay_attempts=self.settings.replay_attempts,
            call_rate=CallRate(
                self.settings.charger_call_rate, self.settings.flood_disconnect_after
            ),
            offline_authorization=OfflineAuthorization(
                allowed=self._offline_id_tags,
                auto_charge=self._auto_charge_enabled,
            ),
            primary_policy=self.live_config.config.primary_policy,
            secondaries=self.live_config.secondaries(cp),
            charger_authorization=handshake.authorization,
            replay_store=self._current_replay_store,
        )
        await self._register(session)
        try:
            self.fleet.changed(tracker.state)
            if self.nc is not None:
                await session.attach_bus(self.nc, self.subjects)
                # Before the charger hears anything: an injection right after its boot
                # must find the subscription (confirmations.py).
                await self._confirmations.confirmed()
        except BaseException:
            self._unregister(session)
            self.fleet.gone(tracker.state)
            raise
        tap.event(
            EventKind.CONNECTED,
            remoteAddress=remote,
            subprotocol=charger.subprotocol,
            upstream=_upstream_state(session),
        )
        log.info("%r connected from %s (%s)", cp, remote, charger.subprotocol)
        return session

    async def _register(self, session: ChargerSession) -> None:
        cp = session.charge_point_id
        old = self.sessions.get(cp)
        self.sessions[cp] = session
        if old is not None:
            log.info("%r connected again; closing the previous connection", cp)
            old.tap.event(EventKind.REPLACED, by=session.tap.session_id)
            await old.close(1000, REPLACED_REASON)

    def _unregister(self, session: ChargerSession) -> None:
        if self.sessions.get(session.charge_point_id) is session:
            del self.sessions[session.charge_point_id]

    async def close_all(self) -> None:
        """Close every charger with 1001 (going away), as a shutting-down server must,
        and wait until their sessions have ended."""
        sessions = list(self.sessions.values())
        for session in sessions:
            with contextlib.suppress(Exception):
                await session.close(1001, "proxy shutting down")
        # Chargers whose session was still starting; the rest are closed already.
        for charger in list(self._opening):
            with contextlib.suppress(Exception):
                await charger.close(1001, "proxy shutting down")
        while self._winding_up:
            await asyncio.wait(set(self._winding_up))


def _upstream_state(session: ChargerSession) -> str:
    if session.upstream_options is None:
        return "none"
    return "up" if session.upstream is not None else "down"


def _remote_host(address: Any) -> str:
    return str(address[0]) if address else ""


def _remote_address(connection: Leg) -> str | None:
    address = connection.remote_address
    if not address:
        return None
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
