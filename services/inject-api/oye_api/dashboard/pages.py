"""The dashboard's HTTP side: the page, login and logout, its assets and two small reads.

==============================  ==========  ============================================
Route                           Login       What
==============================  ==========  ============================================
``GET /``                       needed      the dashboard (else 303 to ``/login``)
``GET /login``                  no          the login page
``POST /login``                 no          ``{"username", "password"}``: 204 and the
                                            cookie; 401 wrong; 429 throttled (as Basic)
``POST /logout``                no          204, the cookie cleared
``GET /dashboard/static/*``     needed      scripts and styles (the login page's own
                                            three files excepted)
``GET /dashboard/me``           needed      ``{"user"}``: who is logged in
``GET /dashboard/catalog``      needed      actions and templates per OCPP version
``GET /dashboard/limits/{cp}``  needed      the stored persistent limit, ``{"maxPower"}``
``WS /dashboard/live``          needed      the live feed (:mod:`.live`)
==============================  ==========  ============================================

"Needed" means the session cookie (or HTTP Basic, for the JSON reads). Every HTML
response carries a Content-Security-Policy that allows this origin only: the page makes
no request anywhere else.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import Scope

from oye_api.dashboard.auth import (
    cookie_user,
    issue_cookie,
    page_user,
    same_origin,
)
from oye_api.dashboard.catalog import catalog
from oye_api.dashboard.session import COOKIE_NAME, LIFETIME_SECONDS
from oye_api.deps import CurrentUser, State, check_login, client_address
from oye_api.kv import get_entry
from oye_shared.subjects import kv_key

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PATH = "/dashboard/static"
#: What the login page needs; every other asset needs a login.
PUBLIC_ASSETS = frozenset({"login.js", "app.css", "favicon.svg"})

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

router = APIRouter(include_in_schema=False)
User = CurrentUser  # the dashboard's session cookie or HTTP Basic (install() sets it)


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC_DIR / name, media_type="text/html", headers=PAGE_HEADERS)


def _set_cookie(request: Request, response: Response, value: str) -> None:
    response.set_cookie(
        COOKIE_NAME,
        value,
        max_age=LIFETIME_SECONDS,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


@router.get("/")
async def dashboard(request: Request, state: State) -> Response:
    """The dashboard; the cookie is renewed on every load."""
    user = await cookie_user(request.app, state, request.cookies)
    if user is None:
        return RedirectResponse("/login", status.HTTP_303_SEE_OTHER)
    response = _page("index.html")
    fresh = await issue_cookie(request.app, state, user)
    if fresh is not None:
        _set_cookie(request, response, fresh)
    return response


@router.get("/login")
async def login_page(request: Request, state: State) -> Response:
    if await cookie_user(request.app, state, request.cookies) is not None:
        return RedirectResponse("/", status.HTTP_303_SEE_OTHER)
    return _page("login.html")


@router.post("/login", status_code=status.HTTP_204_NO_CONTENT)
async def login(request: Request, state: State, body: LoginBody) -> Response:
    """Check the password as HTTP Basic does (same users, same throttle), set the cookie."""
    origin = request.headers.get("origin")
    if origin is not None and not same_origin(origin, request.headers.get("host")):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "log in from this site's own page")
    address = client_address(request)
    if not await check_login(state, address, body.username, body.password):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong user name or password")
    value = await issue_cookie(request.app, state, body.username)
    if value is None:  # deleted between the check and now
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong user name or password")
    log.info("dashboard: %r logged in from %s", body.username, address)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    _set_cookie(request, response, value)
    return response


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout() -> Response:
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
    return response


@router.get("/dashboard/me")
async def me(user: User) -> dict[str, str]:
    """Who is logged in (401 if nobody: the page then goes to the login page)."""
    return {"user": user}


@router.get("/dashboard/catalog")
async def get_catalog(_: User) -> JSONResponse:
    """The actions a charger of each OCPP version takes, a template for each, scenarios."""
    return JSONResponse(catalog(), headers={"Cache-Control": "no-cache"})


@router.get("/dashboard/limits/{chargePointId:path}")
async def get_limit(
    state: State,
    _: User,
    charge_point_id: Annotated[str, PathParam(alias="chargePointId")],
) -> dict[str, Any]:
    """The persistent limit stored for a charger (what the relay re-applies), or null."""
    entry = await get_entry(state.buckets.limits, kv_key(charge_point_id))
    max_power: Any = None
    if entry is not None and entry.value:
        try:
            max_power = json.loads(entry.value).get("maxPower")
        except (ValueError, AttributeError):
            max_power = None
    return {"chargePointId": charge_point_id, "maxPower": max_power}


class DashboardStatic(StaticFiles):
    """The dashboard's assets; all but :data:`PUBLIC_ASSETS` need a login."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        if path not in PUBLIC_ASSETS and await page_user(Request(scope)) is None:
            return JSONResponse({"detail": "log in first"}, status.HTTP_401_UNAUTHORIZED)
        response = await super().get_response(path, scope)
        # Revalidate on every load (ETag): a new version of a module is never mixed with
        # an old one from the cache.
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def static_files() -> DashboardStatic:
    return DashboardStatic(directory=STATIC_DIR)
