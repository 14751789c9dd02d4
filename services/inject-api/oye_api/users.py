"""API users, kept in NATS KV with argon2id hashes so every API instance knows them.

A password is hashed and verified in a worker thread (argon2 takes tens of
milliseconds on purpose), never on the event loop. An unknown user name is checked
against a dummy hash, so a wrong name costs as long as a wrong password.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import re
import secrets
from pathlib import Path

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from oye_api.kv import get_entry
from oye_shared.headers import now_rfc3339
from oye_shared.kv_mirror import BucketMirror

log = logging.getLogger(__name__)

ADMIN = "admin"
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
#: argon2 takes 64 MiB per hash: bound how many run at once, whatever the load.
MAX_CONCURRENT_HASHES = 4
_MAX_WRITE_ATTEMPTS = 20
#: User names double as KV keys, so they keep to the characters KV keys allow.
_USER_NAME = re.compile(r"[A-Za-z0-9_=-][A-Za-z0-9_=.-]{0,63}")


class UserRecord(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    name: str
    password_hash: str
    created: str
    password_changed: str


def valid_user_name(name: str) -> bool:
    return _USER_NAME.fullmatch(name) is not None and not name.endswith(".")


class UserStore:
    """Users by name in one KV bucket."""

    def __init__(self, kv: KeyValue, hasher: PasswordHasher | None = None) -> None:
        self._kv = kv
        # Every request reads its user: from memory (run follow()), not a NATS round trip.
        self._mirror = BucketMirror(kv, "users")
        self._hasher = hasher or PasswordHasher(type=Type.ID)
        self._dummy_hash: str | None = None
        self._hashing = asyncio.Semaphore(MAX_CONCURRENT_HASHES)
        # Passwords verified lately, as a keyed digest next to the hash they matched, so a
        # client that sends Basic auth with every request pays argon2 once, not each time.
        # A changed password has a new hash, which no remembered entry matches.
        self._digest_key = secrets.token_bytes(32)
        self._verified: dict[str, tuple[str, bytes]] = {}

    async def follow(self) -> None:
        """Keep the users in memory until cancelled (reads go to KV until loaded)."""
        await self._mirror.follow()

    async def any_user(self) -> bool:
        watcher = await self._kv.watchall(ignore_deletes=True, meta_only=True)
        try:
            async for entry in watcher:
                return entry is not None
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]
        return False

    async def _hash(self, password: str) -> str:
        async with self._hashing:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def create(self, name: str, password: str) -> bool:
        """Create a user; False if the name is taken (by this or another instance)."""
        if not valid_user_name(name):
            raise ValueError(f"invalid user name {name!r}")
        now = now_rfc3339()
        record = UserRecord(
            name=name, password_hash=await self._hash(password), created=now, password_changed=now
        )
        data = record.model_dump_json(by_alias=True).encode()
        try:
            revision = await self._kv.create(name, data)
        except KeyWrongLastSequenceError:
            return False
        self._mirror.note(name, data, revision)
        return True

    async def _record(self, name: str, *, fresh: bool = False) -> tuple[UserRecord, int] | None:
        """The user's record and revision; ``fresh`` reads KV itself (before a write)."""
        if not valid_user_name(name):
            return None
        entry = await (get_entry(self._kv, name) if fresh else self._mirror.get(name))
        if entry is None or entry.value is None or entry.revision is None:
            return None
        try:
            return UserRecord.model_validate_json(entry.value), entry.revision
        except ValidationError:
            log.error("user %r has an unreadable record in KV; refusing its logins", name)
            return None

    async def _matches(self, password_hash: str, password: str) -> bool:
        try:
            async with self._hashing:
                return await asyncio.to_thread(self._hasher.verify, password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    async def verify(self, name: str, password: str) -> bool:
        """True if the user exists and the password is theirs."""
        found = await self._record(name)
        if found is None:
            if self._dummy_hash is None:
                self._dummy_hash = await self._hash(secrets.token_urlsafe(16))
            await self._matches(self._dummy_hash, password)
            return False
        record, revision = found
        digest = hmac.new(self._digest_key, password.encode(), hashlib.sha256).digest()
        remembered = self._verified.get(name)
        if (
            remembered is not None
            and remembered[0] == record.password_hash
            and hmac.compare_digest(remembered[1], digest)
        ):
            return True
        if not await self._matches(record.password_hash, password):
            return False
        self._verified[name] = (record.password_hash, digest)
        if self._hasher.check_needs_rehash(record.password_hash):
            # Parameters got stronger since this hash was made: upgrade it now.
            record.password_hash = await self._hash(password)
            await self._write(record, revision)
        return True

    async def set_password(self, name: str, password: str) -> None:
        """Replace a user's password (the user must exist)."""
        password_hash = await self._hash(password)
        for _ in range(_MAX_WRITE_ATTEMPTS):
            found = await self._record(name, fresh=True)
            if found is None:
                raise LookupError(f"no user {name!r}")
            record, revision = found
            record.password_hash = password_hash
            record.password_changed = now_rfc3339()
            if await self._write(record, revision):
                return
        raise RuntimeError(f"user {name!r} kept changing during the password change")

    async def _write(self, record: UserRecord, revision: int) -> bool:
        """Compare-and-set; False if someone else changed the record first."""
        data = record.model_dump_json(by_alias=True).encode()
        try:
            new_revision = await self._kv.update(record.name, data, last=revision)
        except KeyWrongLastSequenceError:
            return False
        self._mirror.note(record.name, data, new_revision)
        return True


#: Where a generated admin password is left for the owner (in ``OYE_DATA_DIR``).
ADMIN_PASSWORD_FILE = "admin-password"


async def ensure_admin(users: UserStore, admin_password: str | None, *, data_dir: Path) -> None:
    """On first start (no user at all) create ``admin``.

    Without ``OYE_ADMIN_PASSWORD`` the password is random and written to a file only its
    owner may read: never to the log, where secrets must not go (and logs get shipped).
    """
    if await users.any_user():
        return
    if admin_password:
        if await users.create(ADMIN, admin_password):
            log.info("created user %r with the password from OYE_ADMIN_PASSWORD", ADMIN)
            if len(admin_password) < MIN_PASSWORD_LENGTH:
                log.warning(
                    "OYE_ADMIN_PASSWORD is shorter than %d characters; change it with "
                    "POST /api/change-password",
                    MIN_PASSWORD_LENGTH,
                )
        return
    password = secrets.token_urlsafe(18)
    # Written before the user exists: a password nobody can read would lock the owner out.
    draft = data_dir / f".{ADMIN_PASSWORD_FILE}.{os.getpid()}"
    _write_private(draft, password)
    if not await users.create(ADMIN, password):
        draft.unlink(missing_ok=True)  # another API instance created it at the same moment
        return
    path = draft.replace(data_dir / ADMIN_PASSWORD_FILE)
    log.warning(
        "created user %r with a random password, written to %s (readable by its owner only); "
        "set your own with POST /api/change-password, then delete the file",
        ADMIN,
        path.resolve(),
    )


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a new file only this user can read."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)  # a file left by an earlier run keeps its own mode
        with os.fdopen(descriptor, "w") as file:
            file.write(text + "\n")
    except OSError as exc:
        raise AdminPasswordError(
            f"cannot write the generated admin password to {path} ({exc}); "
            "set OYE_ADMIN_PASSWORD or make OYE_DATA_DIR writable"
        ) from exc


class AdminPasswordError(RuntimeError):
    """The first start could not leave the generated admin password anywhere readable."""
