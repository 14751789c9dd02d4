"""``GET /api/chargers`` and ``GET /api/chargers/{chargePointId}``, read from NATS KV."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status

from oye_api.deps import State
from oye_api.fleet import all_chargers, one_charger
from oye_api.models import ErrorBody
from oye_shared.state import ChargerState

router = APIRouter(prefix="/api/chargers", tags=["chargers"])


@router.get("", summary="Every charger seen, ONLINE or OFFLINE")
async def list_chargers(state: State) -> list[ChargerState]:
    """Chargers sorted by id; one whose relay stopped refreshing its entry is OFFLINE."""
    return await all_chargers(state.buckets)


@router.get(
    "/{chargePointId:path}",
    summary="One charger",
    responses={404: {"model": ErrorBody, "description": "No charger with this id was seen"}},
)
async def get_charger(
    state: State,
    charge_point_id: Annotated[str, Path(alias="chargePointId")],
) -> ChargerState:
    found = await one_charger(state.buckets, charge_point_id) if charge_point_id else None
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no charger {charge_point_id!r}")
    return found
