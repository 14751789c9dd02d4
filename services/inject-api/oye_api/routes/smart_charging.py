"""``POST /api/chargers/{chargePointId}/smart-charging``: the owner's charging limits.

``{"maxPower": A}`` sets a persistent charger-wide limit (stored in NATS KV; the relay
re-applies it whenever the charger connects or boots), ``{"sessionLimit": A}`` a
TxDefaultProfile, ``{"sessionLimit": A, "transactionId": T}`` a TxProfile, and
``{"action": "clear"}`` removes the proxy's profiles (and the stored limit) only. Every
profile uses the reserved stack level (``OYE_LIMIT_STACK_LEVEL``) and a reserved id:
``OYE_LIMIT_PROFILE_ID`` for the persistent limit, the next two ids for the session limits
(TxDefaultProfile, TxProfile), in the charger's OCPP version; the reply is the charger's
answer, as for ``/api/inject`` (for ``clear``: its answer to clearing the persistent one).
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal, Self

from fastapi import APIRouter, Path
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from oye_api.deps import Nats, State
from oye_api.fleet import current_charger
from oye_api.replies import error_response
from oye_api.routes.inject import RESPONSES, send_to_relay
from oye_shared.limits import LimitIds, clear_profile, set_profile, stored_value
from oye_shared.subjects import kv_key

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/chargers", tags=["smart charging"])

NOT_FOUND = 404
CONFLICT = 409
UNPROCESSABLE = 422


class SmartChargingBody(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    max_power: float | None = Field(default=None, gt=0, description="A per phase, persistent")
    session_limit: float | None = Field(default=None, ge=0, description="A per phase")
    transaction_id: str | int | None = None
    action: Literal["clear"] | None = None

    @model_validator(mode="after")
    def _one_thing(self) -> Self:
        given = [self.max_power is not None, self.session_limit is not None, self.action]
        if sum(bool(g) for g in given) != 1:
            raise ValueError('give exactly one of "maxPower", "sessionLimit" or "action": "clear"')
        if self.transaction_id is not None and self.session_limit is None:
            raise ValueError('"transactionId" goes with "sessionLimit"')
        return self


@router.post(
    "/{chargePointId:path}/smart-charging",
    summary="Set or clear the proxy's charging limit on a charger",
    responses=RESPONSES,
    response_class=Response,
)
async def smart_charging(
    state: State,
    nc: Nats,
    charge_point_id: Annotated[str, Path(alias="chargePointId")],
    body: SmartChargingBody,
) -> Response:
    """Build the version-correct profile (or clear), send it to the charger, return its answer."""
    charger = (
        await current_charger(nc, state.buckets, state.settings.subject_prefix, charge_point_id)
        if charge_point_id
        else None
    )
    if charger is None:
        return error_response(NOT_FOUND, f"no charger {charge_point_id!r}")
    version = charger.ocpp_version
    if version is None:
        return error_response(CONFLICT, f"the OCPP version of {charge_point_id!r} is unknown")
    settings = state.settings
    ids = LimitIds(settings.limit_profile_id, settings.limit_stack_level)
    key = kv_key(charge_point_id)
    if body.action == "clear":
        # The session limits first (their answers do not matter: often nothing is there),
        # then the persistent limit, whose answer is the reply.
        await state.buckets.limits.delete(key)
        for session_id in ids.all_ids[1:]:
            await send_to_relay(
                nc,
                settings.subject_prefix,
                charge_point_id,
                clear_profile(version, session_id).model_copy(
                    update={"timeout": settings.inject_timeout}
                ),
            )
        request = clear_profile(version, ids.profile_id)
    elif body.max_power is not None:
        request = set_profile(version, ids, max_power=body.max_power)
    else:
        connector = None
        if body.transaction_id is not None:
            open_tx = charger.transactions.get(str(body.transaction_id), {})
            found = open_tx.get("evseId", open_tx.get("connectorId"))
            connector = found if isinstance(found, int) and found > 0 else None
        request = set_profile(
            version,
            ids,
            session_limit=body.session_limit,
            transaction_id=body.transaction_id,
            connector=connector,
        )
    # Persist first: a charger that is offline now gets the limit when it comes back.
    if body.max_power is not None:
        await state.buckets.limits.put(key, stored_value(body.max_power))
    request = request.model_copy(update={"timeout": settings.inject_timeout})
    log.info("smart charging %s on %s: %s", body, charge_point_id, request.action)
    return await send_to_relay(nc, settings.subject_prefix, charge_point_id, request)
