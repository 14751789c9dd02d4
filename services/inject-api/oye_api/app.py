"""``create_app(settings)``: the inject-api as a FastAPI app whose lifespan owns NATS.

Start: connect NATS (retrying until it answers), open or create the KV buckets, seed the
proxy config from ``OYE_UPSTREAM_URL`` if none is stored, create ``admin`` if no user
exists. Stop: drain NATS. Every ``/api/*`` router is included behind HTTP Basic auth.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import nats.errors
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from nats.aio.client import Client

from oye_api import dashboard
from oye_api.deps import ApiState, require_user
from oye_api.kv import open_buckets
from oye_api.metrics import ApiMetrics, MetricsMiddleware
from oye_api.proxy_config import ConfigStore
from oye_api.replies import error_response
from oye_api.routes import (
    auth,
    charger_auth,
    chargers,
    config,
    health,
    inject,
    logs,
    smart_charging,
)
from oye_api.security import SecurityMiddleware
from oye_api.throttle import WINDOW_SECONDS, LoginThrottle
from oye_api.users import UserStore, ensure_admin
from oye_shared import bus
from oye_shared.settings import Settings
from oye_shared.state import seed_config

log = logging.getLogger(__name__)

DRAIN_DEADLINE = 5.0

DESCRIPTION = """\
Inject OCPP commands into your chargers and read their state, through the OYE Proxy.

Every `/api/*` route needs HTTP Basic auth (user `admin`; its first password is
`OYE_ADMIN_PASSWORD`, or a random one printed once in the log). `GET /health`, `/livez`,
`/readyz` and `/metrics` (Prometheus) do not.
See the request-body examples of `POST /api/inject/{chargePointId}` for the Smart
Charging Guide's scenarios.
"""


async def _on_nats_error(request: Request, exc: Exception) -> JSONResponse:
    log.warning("%s %s: NATS error: %r", request.method, request.url.path, exc)
    return error_response(503, "the message bus (NATS) is not available; try again")


async def _close(nc: Client) -> None:
    """Drain NATS (let replies in flight go out); if that fails, close it outright."""
    await bus.close_connection(nc, deadline=DRAIN_DEADLINE)


def _nats_connected(app: FastAPI) -> bool:
    state: ApiState | None = getattr(app.state, "oye", None)
    return state is not None and state.nc.is_connected


def create_app(settings: Settings) -> FastAPI:
    """The inject-api for these settings; NATS is opened by the lifespan, not here."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nc = await bus.connect(settings, name="inject-api")
        followers: list[asyncio.Task[None]] = []
        try:
            buckets = await open_buckets(nc, settings.subject_prefix, login_window=WINDOW_SECONDS)
            state = ApiState(
                settings=settings,
                nc=nc,
                buckets=buckets,
                users=UserStore(buckets.users),
                throttle=LoginThrottle(buckets.login_failures),
                config=ConfigStore(buckets.config),
            )
            if await state.config.seed(seed_config(settings)):
                log.info(
                    "first start: config seeded with targetCsmsUrl %s (OYE_UPSTREAM_URL)",
                    settings.upstream_url or "null (standalone)",
                )
            await ensure_admin(state.users, settings.admin_password, data_dir=settings.data_dir)
            followers += [
                asyncio.create_task(state.users.follow(), name="users"),
                asyncio.create_task(state.throttle.follow(), name="login failures"),
            ]
            app.state.oye = state
            log.info(
                "inject-api ready on NATS %s", nc.connected_url.netloc if nc.connected_url else "?"
            )
            yield
        finally:
            for task in followers:
                task.cancel()
            await asyncio.gather(*followers, return_exceptions=True)
            await _close(nc)

    app = FastAPI(
        title="OYE Proxy inject-api",
        description=DESCRIPTION,
        version="0.1.0",
        lifespan=lifespan,
    )
    app.add_exception_handler(nats.errors.Error, _on_nats_error)
    # Inside the metrics middleware, so its 400s and 413s are counted too.
    docs_paths = [p for p in (app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url) if p]
    app.add_middleware(
        SecurityMiddleware, max_body_bytes=settings.max_http_body_bytes, docs_paths=docs_paths
    )
    # Its own registry per app (tests run several apps in one process).
    app.state.metrics = metrics = ApiMetrics(nats_connected=lambda: _nats_connected(app))
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    authenticated = [Depends(require_user)]
    app.include_router(health.router)
    # charger_auth before chargers: its GET /api/chargers/pending would otherwise be taken
    # for GET /api/chargers/{chargePointId:path}.
    for module in (inject, smart_charging, charger_auth, chargers, config, auth, logs):
        app.include_router(module.router, dependencies=authenticated)
    # The dashboard at / (its pages, live feed and assets); /api/* also takes its cookie.
    dashboard.install(app)
    return app
