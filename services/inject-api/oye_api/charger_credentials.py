"""The owner's side of charger admission: passwords and approvals in NATS KV.

The record and the bucket are the shared contract :mod:`oye_shared.charger_auth`
(``{P}_charger_auth``, key ``kv_key(cp)``, a :class:`ChargerCredential`); the relay reads it
to admit chargers and writes the pending fields of chargers it holds for approval. Every
write here is compare-and-set on the entry's revision, so a relay marking a charger
pending and the owner approving it at the same moment both take effect, in some order.

Passwords are kept only as argon2id hashes (:func:`charger_hasher`), made in a worker
thread, never on the event loop, a few at a time whatever the load.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from argon2 import PasswordHasher
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import ValidationError

from oye_shared.charger_auth import ChargerCredential, charger_hasher
from oye_shared.headers import now_rfc3339
from oye_shared.kv import get_entry, read_all
from oye_shared.subjects import kv_key

log = logging.getLogger(__name__)

#: Hashes computed at once (each takes ~19 MiB and tens of milliseconds of one core).
MAX_CONCURRENT_HASHES = 2
_MAX_WRITE_ATTEMPTS = 20

#: A change maps the current record (None: no entry) to the one to write, or to None for
#: "nothing to do"; returning the current record itself means "keep it as it is".
Change = Callable[[ChargerCredential | None], ChargerCredential | None]


class CredentialConflict(RuntimeError):
    """The entry kept changing under us (another writer won every compare-and-set)."""


class CredentialStore:
    """Charger credentials by charge point id in one KV bucket."""

    def __init__(self, kv: KeyValue, hasher: PasswordHasher | None = None) -> None:
        self._kv = kv
        self._hasher = hasher or charger_hasher()
        self._hashing = asyncio.Semaphore(MAX_CONCURRENT_HASHES)

    async def get(self, charge_point_id: str) -> ChargerCredential | None:
        found = await self._read(charge_point_id)
        return found[0] if found else None

    async def pending(self) -> list[ChargerCredential]:
        """Chargers waiting for the owner's approval, the longest-waiting first."""
        waiting = []
        for key, value in (await read_all(self._kv)).items():
            record = _parse(key, value)
            if record is not None and is_pending(record):
                waiting.append(record)
        return sorted(waiting, key=lambda r: (pending_since(r), r.charge_point_id))

    async def set_password(self, charge_point_id: str, password: str) -> ChargerCredential:
        """Store the password's hash and approve the charger (anything pending is dropped)."""
        password_hash = await self._hash(password)

        def change(current: ChargerCredential | None) -> ChargerCredential:
            record = current or ChargerCredential(charge_point_id=charge_point_id)
            return record.model_copy(
                update={
                    "approved": True,
                    "password_hash": password_hash,
                    "updated": now_rfc3339(),
                    "pending_since": None,
                    "pending_address": None,
                    "pending_password_hash": None,
                }
            )

        record = await self._change(charge_point_id, change)
        assert record is not None  # this change always writes
        return record

    async def revoke(self, charge_point_id: str) -> ChargerCredential | None:
        """Take the charger off the allow-list and forget its password; None if it had
        neither. From then on the relay treats it as a charger it does not know."""

        def change(current: ChargerCredential | None) -> ChargerCredential | None:
            if current is None or not (current.approved or current.password_hash):
                return None
            return current.model_copy(
                update={
                    "approved": False,
                    "password_hash": None,
                    "pending_since": None,
                    "pending_address": None,
                    "pending_password_hash": None,
                    "updated": now_rfc3339(),
                }
            )

        return await self._change(charge_point_id, change)

    async def approve(self, charge_point_id: str) -> ChargerCredential | None:
        """Approve a pending charger, adopting the password it presented while pending.

        An approved charger is returned as it is; None when there is nothing to approve
        (no entry, or one that is neither approved nor pending, e.g. a revoked one).
        """

        def change(current: ChargerCredential | None) -> ChargerCredential | None:
            if current is None or current.approved:
                return current
            if not is_pending(current):
                return None
            return current.model_copy(
                update={
                    "approved": True,
                    "password_hash": current.pending_password_hash or current.password_hash,
                    "updated": now_rfc3339(),
                    "pending_since": None,
                    "pending_address": None,
                    "pending_password_hash": None,
                }
            )

        return await self._change(charge_point_id, change)

    # -- KV -----------------------------------------------------------------------------

    async def _hash(self, password: str) -> str:
        async with self._hashing:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def _read(self, charge_point_id: str) -> tuple[ChargerCredential, int] | None:
        entry = await get_entry(self._kv, kv_key(charge_point_id))
        if entry is None or entry.value is None or entry.revision is None:
            return None
        record = _parse(entry.key, entry.value)
        return (record, entry.revision) if record is not None else None

    async def _change(self, charge_point_id: str, change: Change) -> ChargerCredential | None:
        """Apply ``change`` to the current record with compare-and-set, retrying on races."""
        key = kv_key(charge_point_id)
        for _ in range(_MAX_WRITE_ATTEMPTS):
            entry = await get_entry(self._kv, key)
            revision = entry.revision if entry is not None else None
            current = None
            if entry is not None and entry.value is not None:
                current = _parse(key, entry.value)
            updated = change(current)
            if updated is None or updated is current:
                return updated
            data = updated.model_dump_json(by_alias=True).encode()
            try:
                if revision is None:
                    await self._kv.create(key, data)
                else:
                    await self._kv.update(key, data, last=revision)
            except KeyWrongLastSequenceError:
                continue  # someone (a relay, another API) wrote first: read again
            return updated
        raise CredentialConflict(f"the credentials of {charge_point_id!r} kept changing")


def is_pending(record: ChargerCredential) -> bool:
    """Not approved, and a relay noted it trying to connect (a revoked charger that tries
    again has its address noted, not its first attempt)."""
    return not record.approved and (
        record.pending_since is not None or record.pending_address is not None
    )


def pending_since(record: ChargerCredential) -> str:
    """When it started waiting: its first attempt, else the last change to its record."""
    return record.pending_since or record.updated or ""


def _parse(key: str, value: bytes) -> ChargerCredential | None:
    try:
        return ChargerCredential.model_validate_json(value)
    except ValidationError:
        # Never log the value: it may hold a hash.
        log.error("charger_auth bucket: unreadable entry %r; treated as missing", key)
        return None
