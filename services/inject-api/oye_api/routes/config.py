"""``GET /api/config`` and ``POST /api/config``: the proxy configuration in NATS KV.

See :mod:`oye_api.proxy_config` for which wins between ``OYE_UPSTREAM_URL`` and KV.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from oye_api.deps import State
from oye_api.proxy_config import ConfigUpdate
from oye_shared.state import ProxyConfig

router = APIRouter(prefix="/api/config", tags=["config"])


@router.get("", summary="The proxy configuration")
async def get_config(state: State) -> ProxyConfig:
    return await state.config.get()


@router.post("", summary="Change some or all configuration keys")
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
                "auto-charge": {
                    "summary": "Start charging automatically with a default id tag",
                    "value": {"autoChargeEnabled": True, "defaultIdTag": "OYE-AUTO"},
                },
            }
        ),
    ],
) -> ProxyConfig:
    """Keys left out keep their value; unknown keys and bad values give 422 naming the key.

    The relay applies a change to new connections and upstream reconnects.
    """
    return await state.config.update(update.changes())
