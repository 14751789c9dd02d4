"""The dashboard's session cookie: signed claims, no server-side session store. Pure.

A cookie value is ``v1.<claims>.<signature>``: the claims are base64url JSON
(``{"u": user, "p": passwordChanged, "e": expiry}``) and the signature is HMAC-SHA256 of
``v1.<claims>`` with the deployment's session key (kept in NATS KV, so that every API
instance accepts every other's cookies). ``p`` is the user's ``passwordChanged`` time when
the cookie was issued: changing the password invalidates every cookie issued before, on
every instance, without a revocation list. ``e`` bounds the cookie's life whatever the
browser does with ``Max-Age``.

:class:`SessionCodec` only signs and checks; whether the user still exists with that
``passwordChanged`` is the caller's question (:mod:`oye_api.dashboard.auth`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

#: The cookie's name; HttpOnly, SameSite=Strict, Path=/ (Secure over HTTPS).
COOKIE_NAME = "oye_session"
#: How long a login lasts (the page re-issues the cookie on every load, so an open
#: dashboard that is reloaded now and then stays logged in).
LIFETIME_SECONDS = 12 * 3600
#: The key's length in bytes.
KEY_BYTES = 32
_VERSION = "v1"
_MAX_COOKIE_CHARS = 4096


@dataclass(frozen=True, slots=True)
class SessionClaims:
    user: str
    #: The user's ``passwordChanged`` when the cookie was issued.
    password_changed: str
    #: Unix seconds after which the cookie is refused.
    expires: float


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionCodec:
    """Issues and checks cookie values with one key."""

    def __init__(
        self,
        key: bytes,
        *,
        lifetime: float = LIFETIME_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(key) < 16:
            raise ValueError("a session key needs at least 16 bytes")
        self._key = key
        self.lifetime = lifetime
        self._clock = clock

    def _sign(self, signed_part: str) -> str:
        return _b64encode(hmac.new(self._key, signed_part.encode(), hashlib.sha256).digest())

    def issue(self, user: str, password_changed: str) -> str:
        """A cookie value for ``user``, valid for :attr:`lifetime` seconds from now."""
        claims = {"u": user, "p": password_changed, "e": round(self._clock() + self.lifetime)}
        body = _b64encode(json.dumps(claims, separators=(",", ":")).encode())
        signed_part = f"{_VERSION}.{body}"
        return f"{signed_part}.{self._sign(signed_part)}"

    def read(self, value: str) -> SessionClaims | None:
        """The claims of a genuine, unexpired cookie value; None for anything else."""
        if len(value) > _MAX_COOKIE_CHARS:
            return None
        version, _, rest = value.partition(".")
        body, _, signature = rest.partition(".")
        if version != _VERSION or not body or not signature:
            return None
        if not hmac.compare_digest(signature, self._sign(f"{version}.{body}")):
            return None
        try:
            claims = json.loads(_b64decode(body))
            user, changed, expires = claims["u"], claims["p"], claims["e"]
        except (binascii.Error, ValueError, TypeError, KeyError):
            return None
        if not (isinstance(user, str) and isinstance(changed, str)):
            return None
        if not isinstance(expires, int | float) or expires <= self._clock():
            return None
        return SessionClaims(user=user, password_changed=changed, expires=float(expires))
