"""``GET /api/config`` and ``POST /api/config``: the proxy configuration in NATS KV.

See :mod:`oye_api.proxy_config` for which wins between ``OYE_UPSTREAM_URL`` and KV.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, HTTPException

from oye_api.deps import State
from oye_api.models import ErrorBody
from oye_api.proxy_config import ConfigRefusedError, ConfigUpdate, shown
from oye_shared.state import ProxyConfig

router = APIRouter(prefix="/api/config", tags=["config"])


@router.get("", summary="The proxy configuration")
async def get_config(state: State) -> ProxyConfig:
    """The configuration; secondary backends' passwords show as ``********``."""
    return shown(await state.config.get())


@router.post(
    "",
    summary="Change some or all configuration keys",
    responses={
        422: {
            "model": ErrorBody,
            "description": "A bad key or value, or two backends owning one exclusive command",
        }
    },
)
async def update_config(
    state: State,
    update: Annotated[
        ConfigUpdate,
        Body(
            openapi_examples={
                "standalone": {
                    "summary": "Stop forwarding to a CSMS and let the proxy answer",
                    "value": {"targetCsmsUrl": None, "csmsForwardingEnabled": False},
                },
                "new-csms": {
                    "summary": "Point the proxy at another CSMS",
                    "value": {"targetCsmsUrl": "wss://csms.example.com/ocpp"},
                },
                "secondary": {
                    "summary": "Also connect Home Assistant, read-only (the default policy)",
                    "value": {
                        "secondaryBackends": [
                            {"name": "ha", "url": "ws://homeassistant.local:9000", "auth": "none"}
                        ]
                    },
                },
                "auto-charge": {
                    "summary": "Start charging automatically with a default id tag",
                    "value": {"autoChargeEnabled": True, "defaultIdTag": "OYE-AUTO"},
                },
            }
        ),
    ],
) -> ProxyConfig:
    """Keys left out keep their value; unknown keys and bad values give 422 naming the key.

    The relay applies a change to new connections and upstream reconnects. A configuration
    that lets two backends own the same exclusive command (starting a transaction, a
    charging profile of one purpose, one configuration key) is refused with 422 naming it.
    """
    try:
        return shown(await state.config.update(update.changes()))
    except ConfigRefusedError as exc:
        raise HTTPException(422, str(exc)) from exc
