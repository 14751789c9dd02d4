"""``WS /dashboard/live``: the live feed of one browser.

The server sends the messages of :mod:`oye_api.dashboard.feed`: first the whole fleet,
then every change as it happens. The browser may send one kind of message, its filter:
``{"type": "filter", "chargePointId": ..., "direction": ..., "action": ...}`` (each null
for any); frames and events that do not match are not sent at all.

The handshake needs the session cookie and an ``Origin`` that is this site (a page
elsewhere cannot open it with the user's cookie); otherwise it is refused (HTTP 403). On
shutdown the server closes the socket (1012) and the page reconnects to another instance
or to this one when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from fastapi import APIRouter, FastAPI, WebSocket, WebSocketDisconnect, status

from oye_api.dashboard.auth import cookie_user, same_origin
from oye_api.dashboard.feed import ClientQueue, FeedFilter
from oye_api.dashboard.hub import LiveHub
from oye_api.deps import ApiState

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

#: The longest filter message a browser may send.
MAX_CLIENT_MESSAGE = 4096


def live_hub(app: FastAPI) -> LiveHub:
    """The app's hub (one per app, made on first use)."""
    hub: LiveHub | None = getattr(app.state, "dashboard_hub", None)
    if hub is None:
        state: ApiState = app.state.oye
        hub = app.state.dashboard_hub = LiveHub(
            state.nc, state.buckets, state.settings.subject_prefix
        )
    return hub


@router.websocket("/dashboard/live")
async def live(websocket: WebSocket) -> None:
    state: ApiState = websocket.app.state.oye
    if not same_origin(websocket.headers.get("origin"), websocket.headers.get("host")):
        await websocket.close(status.WS_1008_POLICY_VIOLATION)
        return
    user = await cookie_user(websocket.app, state, websocket.cookies)
    if user is None:
        await websocket.close(status.WS_1008_POLICY_VIOLATION)
        return
    await websocket.accept()
    hub = live_hub(websocket.app)
    async with hub.joined() as client:
        log.info("dashboard: %s watching live (%d browsers)", user, hub.clients)
        await websocket.send_text(hub.snapshot())
        sending = asyncio.create_task(_send(websocket, client), name="dashboard-live-send")
        receiving = asyncio.create_task(_receive(websocket, client), name="dashboard-live-recv")
        try:
            await asyncio.wait({sending, receiving}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sending, receiving):
                task.cancel()
            await asyncio.wait({sending, receiving})
        if client.dropped_total:
            log.info("dashboard: %s's feed skipped %d frames", user, client.dropped_total)


async def _send(websocket: WebSocket, client: ClientQueue) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        while True:
            for text in await client.next_batch():
                await websocket.send_text(text)


async def _receive(websocket: WebSocket, client: ClientQueue) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            text = await websocket.receive_text()
            if len(text) > MAX_CLIENT_MESSAGE:
                continue
            try:
                message = json.loads(text)
            except ValueError:
                continue
            if isinstance(message, dict) and message.get("type") == "filter":
                client.filter = FeedFilter.from_message(message)
