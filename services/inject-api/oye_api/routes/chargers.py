"""``GET /api/chargers`` and ``GET /api/chargers/{chargePointId}``, read from NATS KV."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status

from oye_api.deps import State
from oye_api.fleet import all_chargers, one_charger
from oye_api.models import ErrorBody
from oye_shared.replay import charger_backlog
from oye_shared.state import ChargerState

router = APIRouter(prefix="/api/chargers", tags=["chargers"])


class ChargerDetail(ChargerState):
    #: Messages kept while its CSMS was unreachable and not replayed yet.
    replay_backlog: int = 0
    #: When the oldest of them arrived (RFC 3339), if any.
    replay_oldest: str | None = None


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
) -> ChargerDetail:
    """The charger's state, and what waits in its offline replay queue."""
    found = await one_charger(state.buckets, charge_point_id) if charge_point_id else None
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no charger {charge_point_id!r}")
    backlog = await charger_backlog(
        state.nc.jetstream(), state.settings.subject_prefix, charge_point_id
    )
    return ChargerDetail(
        **found.model_dump(), replay_backlog=backlog.depth, replay_oldest=backlog.oldest
    )
