"""``GET /api/chargers`` and ``GET /api/chargers/{chargePointId}``, read from NATS KV."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from oye_api.deps import State
from oye_api.fleet import all_chargers, current_charger
from oye_api.models import ErrorBody
from oye_shared.backends import PRIMARY
from oye_shared.replay import charger_backlog, secondary_backlogs
from oye_shared.state import ChargerState

router = APIRouter(prefix="/api/chargers", tags=["chargers"])


class BackendBacklog(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    #: Messages kept while this secondary backend was unreachable, not replayed yet.
    replay_backlog: int = 0
    #: When the oldest of them arrived (RFC 3339), if any.
    replay_oldest: str | None = None


class ChargerDetail(ChargerState):
    #: Messages kept while its CSMS was unreachable and not replayed yet.
    replay_backlog: int = 0
    #: When the oldest of them arrived (RFC 3339), if any.
    replay_oldest: str | None = None
    #: The same per secondary backend (those in ``backends``, and any with a queue left).
    backend_backlogs: dict[str, BackendBacklog] = Field(default_factory=dict)


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
    found = (
        await current_charger(
            state.nc, state.buckets, state.settings.subject_prefix, charge_point_id
        )
        if charge_point_id
        else None
    )
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no charger {charge_point_id!r}")
    js, prefix = state.nc.jetstream(), state.settings.subject_prefix
    backlog = await charger_backlog(js, prefix, charge_point_id)
    waiting = await secondary_backlogs(js, prefix, charge_point_id)
    names = sorted({name for name in found.backends if name != PRIMARY} | waiting.keys())
    return ChargerDetail(
        **found.model_dump(),
        replay_backlog=backlog.depth,
        replay_oldest=backlog.oldest,
        backend_backlogs={
            name: BackendBacklog(
                replay_backlog=waiting[name].depth if name in waiting else 0,
                replay_oldest=waiting[name].oldest if name in waiting else None,
            )
            for name in names
        },
    )
