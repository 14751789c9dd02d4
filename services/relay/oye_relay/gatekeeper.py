"""Admission at the handshake: stored credentials, password checks, failure throttling.

The relay follows the ``{P}_charger_auth`` bucket (:mod:`oye_shared.charger_auth`) into
memory, so a handshake never waits for NATS once the bucket is loaded, and a NATS outage
keeps the last known credentials. A password is checked with argon2id in a worker thread;
a charger's verified password is remembered (as a SHA-256 digest next to the stored hash),
so its reconnects cost no hashing. Failed admissions are counted per remote address: too
many in a minute and that address is refused with 429 until it calms down. The decision
itself is :func:`oye_relay.admission.admit` (pure).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable

from nats.errors import Error as NatsError
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import ValidationError

from oye_relay.admission import (
    Admission,
    AuthMode,
    Refusal,
    admit,
    auth_mode,
    needs_password_check,
)
from oye_shared.bus import cancellation_checkpoint
from oye_shared.charger_auth import (
    ChargerCredential,
    basic_credentials,
    charger_hasher,
    verify_password,
)
from oye_shared.headers import now_rfc3339
from oye_shared.kv import get_entry
from oye_shared.settings import Settings
from oye_shared.subjects import kv_key, kv_key_decode

log = logging.getLogger(__name__)

#: Failed admissions from one address within WINDOW seconds before it is refused (429).
FAILURE_LIMIT = 10
WINDOW = 60.0
#: argon2 costs memory and CPU on purpose: bound how many checks run at once.
MAX_CONCURRENT_CHECKS = 2


class Gatekeeper:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.credentials: dict[str, ChargerCredential] = {}
        self.loaded = asyncio.Event()
        self.kv: KeyValue | None = None
        #: Called with a charge point id when the owner approves it (pending sessions end).
        self.on_approved: Callable[[str], None] = lambda _: None
        #: Chargers connected or connecting, by remote address.
        self.connections: Counter[str] = Counter()
        self._hasher = charger_hasher()
        self._checking = asyncio.Semaphore(MAX_CONCURRENT_CHECKS)
        self._verified: dict[str, tuple[str, bytes]] = {}
        self._failures: defaultdict[str, deque[float]] = defaultdict(deque)

    def mode(self, *, has_upstream: bool) -> AuthMode:
        return auth_mode(self.settings.charger_auth, has_upstream=has_upstream)

    # The credentials, followed from NATS KV.

    async def follow(self, kv: KeyValue) -> None:
        """Load every credential, then apply each change (until cancelled)."""
        self.kv = kv
        watcher = await kv.watchall()
        try:
            async for entry in watcher:
                cancellation_checkpoint()
                if entry is None:  # the initial values are in
                    self.loaded.set()
                    continue
                self._apply(entry.key, entry.value)
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]

    def _apply(self, key: str, value: bytes | None) -> None:
        try:
            charge_point_id = kv_key_decode(key)
        except ValueError:
            return
        if not value:
            self.credentials.pop(charge_point_id, None)
            return
        try:
            credential = ChargerCredential.model_validate_json(value)
        except ValidationError as exc:
            log.error("ignoring an unreadable credential for %r: %s", charge_point_id, exc)
            return
        before = self.credentials.get(charge_point_id)
        self.credentials[charge_point_id] = credential
        if credential.approved and (before is None or not before.approved):
            self.on_approved(charge_point_id)

    # The decision.

    def throttled(self, address: str, now: float | None = None) -> int | None:
        """Seconds until ``address`` may try again, or None if it may now."""
        now = time.monotonic() if now is None else now
        failures = self._failures.get(address)
        if failures is None:
            return None
        while failures and failures[0] <= now - WINDOW:
            failures.popleft()
        if len(failures) < FAILURE_LIMIT:
            if not failures:
                del self._failures[address]
            return None
        return max(1, math.ceil(failures[-FAILURE_LIMIT] + WINDOW - now))

    def failed(self, address: str) -> None:
        failures = self._failures[address]
        failures.append(time.monotonic())
        while len(failures) > FAILURE_LIMIT:
            failures.popleft()

    async def check(
        self, charge_point_id: str, authorization: str | None, *, has_upstream: bool
    ) -> Admission | Refusal:
        mode = self.mode(has_upstream=has_upstream)
        if mode == "none":
            return Admission.ADMIT
        if not self.loaded.is_set():
            try:  # only at a relay's start, before NATS answered
                async with asyncio.timeout(self.settings.handshake_timeout / 2):
                    await self.loaded.wait()
            except TimeoutError:
                return Refusal(503, "cannot check credentials now; try again later")
        credential = self.credentials.get(charge_point_id)
        password_ok = False
        if credential is not None and needs_password_check(mode, credential):
            password_ok = await self._verify(charge_point_id, credential, authorization)
        return admit(mode, self.settings.unknown_chargers, credential, password_ok=password_ok)

    async def _verify(
        self, charge_point_id: str, credential: ChargerCredential, authorization: str | None
    ) -> bool:
        presented = basic_credentials(authorization)
        stored = credential.password_hash
        if presented is None or stored is None or presented[0] != charge_point_id:
            return False
        digest = hashlib.sha256(presented[1].encode()).digest()
        remembered = self._verified.get(charge_point_id)
        if (
            remembered is not None
            and remembered[0] == stored  # the stored hash is not secret; the digest is
            and hmac.compare_digest(remembered[1], digest)
        ):
            return True
        async with self._checking:
            ok = await asyncio.to_thread(verify_password, self._hasher, stored, presented[1])
        if ok:
            self._verified[charge_point_id] = (stored, digest)
        return ok

    async def record_pending(
        self, charge_point_id: str, authorization: str | None, address: str
    ) -> None:
        """Note an unknown charger for the owner to approve (with its password, hashed)."""
        kv = self.kv
        if kv is None:
            return
        presented = basic_credentials(authorization)
        password_hash = None
        if presented is not None and presented[0] == charge_point_id:
            async with self._checking:
                password_hash = await asyncio.to_thread(self._hasher.hash, presented[1])
        key = kv_key(charge_point_id)
        for _ in range(5):
            try:
                entry = await get_entry(kv, key)
                if entry is not None and entry.value:
                    known = ChargerCredential.model_validate_json(entry.value)
                    if known.approved:
                        return
                    pending = known.model_copy(
                        update={
                            "pending_since": known.pending_since or now_rfc3339(),
                            "pending_address": address,
                            "pending_password_hash": password_hash,
                            "updated": now_rfc3339(),
                        }
                    )
                    await kv.update(key, _json(pending), last=entry.revision)
                else:
                    pending = ChargerCredential(
                        charge_point_id=charge_point_id,
                        pending_since=now_rfc3339(),
                        pending_address=address,
                        pending_password_hash=password_hash,
                        updated=now_rfc3339(),
                    )
                    await kv.create(key, _json(pending))
                return
            except KeyWrongLastSequenceError:
                continue  # written meanwhile (approved?): read it again
            except (NatsError, OSError, TimeoutError, ValidationError) as exc:
                log.warning("%r: could not record the pending charger: %r", charge_point_id, exc)
                return


def _json(credential: ChargerCredential) -> bytes:
    return credential.model_dump_json(by_alias=True).encode()
