"""``GET /health`` (no auth): NATS connectivity, live relays, connected chargers."""

from __future__ import annotations

import asyncio
import logging

import nats.errors
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from oye_api.deps import State
from oye_api.fleet import all_chargers, live_relays
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
