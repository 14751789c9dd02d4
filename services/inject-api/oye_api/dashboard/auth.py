"""Who is logged in to the dashboard: the session cookie, checked against the users in KV.

The cookie (:mod:`oye_api.dashboard.session`) is accepted wherever the API takes HTTP
Basic, through :func:`session_or_basic`, which :func:`oye_api.dashboard.install` puts in
place of :func:`oye_api.deps.basic_user`. HTTP Basic keeps working exactly as before; a
request that carries Basic credentials is judged by them alone. Cross-site requests are
kept out three ways: the cookie is ``SameSite=Strict``; a request authenticated by it that
changes something (POST, ...) must also carry :data:`CSRF_HEADER`, which a cross-origin
page cannot add without a CORS preflight this API never grants; and the live WebSocket
checks ``Origin``.

The signing key is made once per deployment and kept in NATS KV (bucket ``{P}_config``,
key :data:`SESSION_KEY`), created with compare-and-set so that concurrent API instances
agree on it.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
from collections.abc import Mapping
from urllib.parse import urlsplit

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.security import HTTPBasicCredentials
from nats.js.errors import KeyWrongLastSequenceError
from pydantic import ValidationError

from oye_api.dashboard.session import COOKIE_NAME, KEY_BYTES, SessionCodec
from oye_api.deps import ApiState, basic_user
from oye_api.kv import get_entry
from oye_api.users import UserRecord, valid_user_name

log = logging.getLogger(__name__)

#: KV key (bucket ``{P}_config``) of the session signing key.
SESSION_KEY = "dashboard-session-key"
#: Sent by the dashboard's own requests; required with the cookie on unsafe methods.
CSRF_HEADER = "X-OYE-Dashboard"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_MAX_KEY_ATTEMPTS = 5


class SessionKeys:
    """The deployment's :class:`SessionCodec`, its key read (or made) on first use."""

    def __init__(self) -> None:
        self._codec: SessionCodec | None = None
        self._lock = asyncio.Lock()

    async def codec(self, state: ApiState) -> SessionCodec:
        if self._codec is None:
            async with self._lock:
                if self._codec is None:
                    self._codec = SessionCodec(await _load_or_create_key(state))
        return self._codec


async def _load_or_create_key(state: ApiState) -> bytes:
    kv = state.buckets.config
    for _ in range(_MAX_KEY_ATTEMPTS):
        entry = await get_entry(kv, SESSION_KEY)
        if entry is not None and entry.value:
            return base64.b64decode(entry.value)
        try:
            await kv.create(SESSION_KEY, base64.b64encode(secrets.token_bytes(KEY_BYTES)))
        except KeyWrongLastSequenceError:
            continue  # another instance made it first: read that one
        log.info("dashboard: created the session signing key")
    raise RuntimeError("could not read or create the dashboard session key")


def session_keys(app: FastAPI) -> SessionKeys:
    """The app's :class:`SessionKeys` (one per app, made on first use)."""
    keys: SessionKeys | None = getattr(app.state, "dashboard_keys", None)
    if keys is None:
        keys = app.state.dashboard_keys = SessionKeys()
    return keys


async def user_record(state: ApiState, name: str) -> UserRecord | None:
    if not valid_user_name(name):
        return None
    entry = await get_entry(state.buckets.users, name)
    if entry is None or entry.value is None:
        return None
    try:
        return UserRecord.model_validate_json(entry.value)
    except ValidationError:
        return None


async def cookie_user(app: FastAPI, state: ApiState, cookies: Mapping[str, str]) -> str | None:
    """The user a session cookie names, if it is genuine, unexpired and still current."""
    value = cookies.get(COOKIE_NAME)
    if not value:
        return None
    claims = (await session_keys(app).codec(state)).read(value)
    if claims is None:
        return None
    record = await user_record(state, claims.user)
    if record is None or record.password_changed != claims.password_changed:
        return None  # the user is gone, or changed the password since this login
    return claims.user


async def issue_cookie(app: FastAPI, state: ApiState, user: str) -> str | None:
    """A fresh cookie value for ``user``; None if the user does not exist."""
    record = await user_record(state, user)
    if record is None:
        return None
    return (await session_keys(app).codec(state)).issue(user, record.password_changed)


async def page_user(request: Request) -> str | None:
    """The logged-in user of a page or asset request, or None."""
    state: ApiState = request.app.state.oye
    return await cookie_user(request.app, state, request.cookies)


def same_origin(origin: str | None, host: str | None) -> bool:
    """Whether an ``Origin`` header names the host the request was sent to."""
    if not origin or not host:
        return False
    return urlsplit(origin).netloc.lower() == host.lower()


async def session_or_basic(
    request: Request, state: ApiState, credentials: HTTPBasicCredentials | None
) -> str:
    """:func:`~oye_api.deps.basic_user`, also satisfied by a dashboard session cookie.

    Basic credentials, when sent, decide alone (401, 429 as before). Without them a valid
    cookie names the user; an unsafe method must then carry :data:`CSRF_HEADER` (else
    403). The dashboard's requests whose session has ended get a 401 without a Basic
    challenge, so the browser shows the login page rather than its own password dialog.
    """
    from_dashboard = request.headers.get(CSRF_HEADER) == "1"
    if credentials is None and COOKIE_NAME in request.cookies:
        user = await cookie_user(request.app, state, request.cookies)
        if user is not None:
            if request.method not in SAFE_METHODS and not from_dashboard:
                raise HTTPException(
                    status.HTTP_403_FORBIDDEN,
                    f"a request authenticated by the session cookie needs the {CSRF_HEADER} header",
                )
            return user
    if credentials is None and from_dashboard:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "not logged in (or the session ended)")
    return await basic_user(request, state, credentials)
