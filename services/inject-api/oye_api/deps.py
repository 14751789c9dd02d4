"""FastAPI dependencies: what a route needs, taken from the app's running state.

Routes declare ``nc: Annotated[Client, Depends(get_nats)]`` or use the ``Nats``, ``State``
and ``CurrentUser`` aliases below. Every ``/api/*`` router is included with
``dependencies=[Depends(require_user)]``; a route that wants the user's name may also
declare it (FastAPI runs the dependency once per request).
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from fastapi.security.utils import get_authorization_scheme_param
from nats.aio.client import Client

from oye_api.kv import Buckets
from oye_api.proxy_config import ConfigStore
from oye_api.throttle import LoginThrottle
from oye_api.users import UserStore
from oye_shared.settings import Settings

log = logging.getLogger(__name__)

REALM = "OYE Proxy"


@dataclass(frozen=True, slots=True)
class ApiState:
    """Everything the lifespan opened; one per app, kept on ``app.state.oye``."""

    settings: Settings
    nc: Client
    buckets: Buckets
    users: UserStore
    throttle: LoginThrottle
    config: ConfigStore


# Dependencies are coroutines: FastAPI runs a plain function in a worker thread, a
# thread hop per request for a dictionary lookup.


async def get_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.oye
    return state


State = Annotated[ApiState, Depends(get_state)]


async def get_nats(request: Request) -> Client:
    """The app's NATS connection (opened by the lifespan, drained on exit)."""
    nc: Client = request.app.state.oye.nc
    return nc


Nats = Annotated[Client, Depends(get_nats)]


class _Basic(HTTPBasic):
    """HTTP Basic that reads the credentials as UTF-8 (what curl sends), not only ASCII."""

    async def __call__(self, request: Request) -> HTTPBasicCredentials | None:  # type: ignore[override]
        authorization = request.headers.get("Authorization")
        scheme, param = get_authorization_scheme_param(authorization)
        if not authorization or scheme.lower() != "basic":
            return None
        try:
            text = base64.b64decode(param, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise _unauthorized("malformed Basic credentials") from None
        username, separator, password = text.partition(":")
        if not separator:
            raise _unauthorized("malformed Basic credentials")
        return HTTPBasicCredentials(username=username, password=password)


basic_credentials = _Basic(
    scheme_name="HTTPBasic", realm=REALM, auto_error=False, description="The API user, e.g. admin"
)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
    )


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


#: How a request proves its user: HTTP Basic (:func:`basic_user`) unless the app puts
#: another in ``app.state.authenticate`` (the dashboard adds its session cookie).
Authenticate = Callable[[Request, ApiState, HTTPBasicCredentials | None], Awaitable[str]]


async def require_user(
    request: Request,
    state: State,
    credentials: Annotated[HTTPBasicCredentials | None, Depends(basic_credentials)],
) -> str:
    """The authenticated user's name, by the app's :data:`Authenticate`."""
    # Not app.dependency_overrides: while any override is set, FastAPI rebuilds the
    # dependencies of every request (a fifth of an injection's time in the API).
    authenticate: Authenticate = getattr(request.app.state, "authenticate", basic_user)
    return await authenticate(request, state, credentials)


async def basic_user(
    request: Request, state: ApiState, credentials: HTTPBasicCredentials | None
) -> str:
    """The user named by HTTP Basic; 401 without valid credentials, 429 when throttled."""
    if credentials is None:
        raise _unauthorized("authentication required (HTTP Basic)")
    address = client_address(request)
    if not await check_login(state, address, credentials.username, credentials.password):
        raise _unauthorized("wrong user name or password")
    return credentials.username


async def check_login(state: ApiState, address: str, username: str, password: str) -> bool:
    """One login attempt from ``address``, as HTTP Basic and the dashboard both make it:
    429 while the address is throttled, False (and a failure counted) for a wrong
    password, True (and the address's failures forgotten) for a right one."""
    failures = await state.throttle.failures(address)
    wait = state.throttle.retry_after(failures)
    if wait is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"too many failed logins from {address}; try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    if not await state.users.verify(username, password):
        await state.throttle.record_failure(address)
        log.warning("failed login for user %r from %s", username, address)
        return False
    if failures:
        await state.throttle.clear(address)
    return True


CurrentUser = Annotated[str, Depends(require_user)]
