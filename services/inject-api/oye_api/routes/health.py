"""Health without auth: ``GET /health`` (NATS connectivity, live relays, connected
chargers), the probes ``GET /livez`` and ``GET /readyz``, and ``GET /metrics`` (Prometheus).
"""

from __future__ import annotations

import asyncio
import logging

import nats.errors
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client.exposition import choose_encoder

from oye_api.deps import State
from oye_api.fleet import all_chargers, live_relays
from oye_api.metrics import ApiMetrics
from oye_api.models import Health
from oye_shared.replay import total_backlog
from oye_shared.state import ChargerStatus

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])

KV_TIMEOUT_SECONDS = 2.0


@router.get(
    "/health",
    summary="Is the API up, and what does it see",
    responses={503: {"model": Health, "description": "NATS is not reachable"}},
)
async def health(state: State) -> JSONResponse:
    """200 while NATS is connected, else 503; counts are null if KV could not be read."""
    connected = state.nc.is_connected
    body = Health(
        status="ok" if connected else "degraded",
        nats="connected" if connected else "disconnected",
    )
    if connected:
        try:
            async with asyncio.timeout(KV_TIMEOUT_SECONDS):
                live = await live_relays(state.buckets)
                chargers = await all_chargers(state.buckets, live)
            body.relays = len(live)
            body.chargers = sum(charger.status is ChargerStatus.ONLINE for charger in chargers)
            body.replay_backlog = await total_backlog(
                state.nc.jetstream(), state.settings.subject_prefix
            )
        except (nats.errors.Error, TimeoutError) as exc:
            log.warning("health: cannot read KV: %s", exc)
            body.status = "degraded"
    return JSONResponse(body.model_dump(by_alias=True), 200 if body.status == "ok" else 503)


@router.get("/livez", summary="Liveness: the process answers")
async def livez() -> JSONResponse:
    """Always 200 while the API's event loop answers."""
    return JSONResponse({"status": "alive"})


@router.get(
    "/readyz",
    summary="Readiness: connected to NATS",
    responses={503: {"description": "Not ready: `{status, reason}`"}},
)
async def readyz(request: Request) -> JSONResponse:
    """200 while NATS is connected (everything the API does goes through it), else 503."""
    state = getattr(request.app.state, "oye", None)
    if state is not None and state.nc.is_connected:
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "not ready", "reason": "NATS not connected"}, 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "The exposition format"}},
)
async def metrics(request: Request) -> Response:
    """This API instance's metrics (OpenMetrics if the Accept header asks for it)."""
    api_metrics = request.app.state.metrics
    assert isinstance(api_metrics, ApiMetrics)
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encoder(api_metrics.registry), headers={"Content-Type": content_type})
