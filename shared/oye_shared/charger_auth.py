"""Who may connect as a charger: per-charger passwords and approvals, on NATS KV.

Both the relay (which admits chargers) and the inject-api (where the owner sets passwords
and approves chargers) read and write the ``{P}_charger_auth`` bucket, key ``kv_key(cp)``,
value :class:`ChargerCredential` JSON. A charger with an entry that is ``approved`` is on
the allow-list. Passwords are kept only as argon2id hashes (OWASP's minimum parameters:
charger passwords are long random strings, and a boot storm must not cost minutes of CPU;
the relay also remembers what it verified, so a reconnect costs no hashing).

OCPP security profiles 1 and 2 send ``Authorization: Basic base64(<chargePointId>:<password>)``;
:func:`basic_credentials` reads it (the user name must be the charge point id).
"""

from __future__ import annotations

import base64
import binascii
import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

CHARGER_AUTH_BUCKET = "charger_auth"
#: OCPP 2.0.1 BasicAuthPassword: 16 to 40 characters (1.6 AuthorizationKey: 16 to 20 octets).
MIN_CHARGER_PASSWORD = 16
MAX_CHARGER_PASSWORD = 40


class ChargerCredential(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    charge_point_id: str
    #: On the allow-list: the owner approved it (or set its password).
    approved: bool = False
    password_hash: str | None = None
    updated: str | None = None
    #: An unknown charger that tried to connect, waiting for the owner's approval.
    pending_since: str | None = None
    pending_address: str | None = None
    #: The password it presented (hashed): approving it makes this its password.
    pending_password_hash: str | None = None

    @property
    def revoked(self) -> bool:
        """Known once, now neither approved nor waiting: the owner took its access away."""
        return not self.approved and self.pending_since is None and self.pending_address is None


def charger_hasher() -> PasswordHasher:
    return PasswordHasher(type=Type.ID, time_cost=2, memory_cost=19_456, parallelism=1)


def verify_password(hasher: PasswordHasher, password_hash: str, password: str) -> bool:
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_charger_password() -> str:
    """A random password that every charger accepts (40 characters, letters and digits)."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
    return "".join(secrets.choice(alphabet) for _ in range(MAX_CHARGER_PASSWORD))


def password_problem(password: str) -> str | None:
    """Why a password cannot be a charger's, or None."""
    if not MIN_CHARGER_PASSWORD <= len(password) <= MAX_CHARGER_PASSWORD:
        return f"must be {MIN_CHARGER_PASSWORD} to {MAX_CHARGER_PASSWORD} characters"
    if not password.isprintable() or not password.isascii():
        return "must be printable ASCII"
    return None


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """(user, password) of an ``Authorization: Basic`` header, or None if there is none."""
    if not authorization:
        return None
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None
