"""Charger admission, the owner's side: passwords, approvals, the chargers waiting for one.

====================================================  ======  ===============================
Route                                                 Status  Body
====================================================  ======  ===============================
``GET /api/chargers/pending``                         200     ``[PendingCharger]``
``PUT /api/chargers/{chargePointId}/password``        200     ``PasswordSet`` (a generated
                                                              password only in this answer)
``DELETE /api/chargers/{chargePointId}/password``     204     (404: nothing to revoke)
``POST /api/chargers/{chargePointId}/approve``        200     ``Admission`` (404: nothing to
                                                              approve)
====================================================  ======  ===============================

No answer ever carries a hash. The relay watches the ``{P}_charger_auth`` bucket, so a
change applies to the charger's next connection without anything published from here.

Route order matters: ``GET /api/chargers/pending`` must be registered before
``GET /api/chargers/{chargePointId:path}`` (routes/chargers.py), which would otherwise
take ``pending`` as a charge point id; app.py includes this router first. (So a charger
whose id is literally ``pending`` cannot be read with ``GET /api/chargers/pending``.)
"""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Request, status
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from oye_api.charger_credentials import (
    CredentialConflict,
    CredentialStore,
    is_pending,
    pending_since,
)
from oye_api.deps import CurrentUser, State
from oye_api.models import ErrorBody
from oye_shared.charger_auth import (
    MAX_CHARGER_PASSWORD,
    MIN_CHARGER_PASSWORD,
    ChargerCredential,
    new_charger_password,
    password_problem,
)

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/chargers", tags=["charger admission"])

#: Spelled out: its name in ``fastapi.status`` changed between Starlette versions.
UNPROCESSABLE = 422
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class _Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class ChargerPassword(_Body):
    model_config = ConfigDict(extra="forbid")

    #: Left out (or null): the proxy generates one and answers it once.
    password: str | None = None


class Admission(_Body):
    """A charger's admission record as the owner sees it: never a hash."""

    charge_point_id: str
    #: On the allow-list (approved, or given a password).
    approved: bool
    #: A password is set: the proxy can check this charger itself (local mode).
    has_password: bool
    updated: str | None = None
    #: Set while the charger waits for approval.
    pending_since: str | None = None
    pending_address: str | None = None

    @classmethod
    def of(cls, record: ChargerCredential) -> Admission:
        waiting = is_pending(record)
        return cls(
            charge_point_id=record.charge_point_id,
            approved=record.approved,
            has_password=record.password_hash is not None,
            updated=record.updated,
            pending_since=pending_since(record) if waiting else None,
            pending_address=record.pending_address if waiting else None,
        )


class PasswordSet(Admission):
    #: The generated password, in this answer only (it is kept hashed); null if you chose it.
    password: str | None = None


class PendingCharger(_Body):
    charge_point_id: str
    #: When it first tried to connect (RFC 3339).
    since: str
    #: The remote address it connected from.
    address: str | None = None
    #: It presented a password: approving makes that its password.
    presented_password: bool


def get_credentials(request: Request, state: State) -> CredentialStore:
    """The app's credential store (one per app, so its hashing bound holds app-wide)."""
    store: CredentialStore | None = getattr(request.app.state, "charger_credentials", None)
    if store is None:
        store = CredentialStore(state.buckets.charger_auth)
        request.app.state.charger_credentials = store
    return store


Credentials = Annotated[CredentialStore, Depends(get_credentials)]


def charge_point_id(
    state: State,
    value: Annotated[
        str, Path(alias="chargePointId", description="As the charger gives it (URL-encoded)")
    ],
) -> str:
    """The id, refused (422) if the relay would refuse a charger with it."""
    limit = state.settings.max_id_length
    problem = None
    if not value:
        problem = "is empty"
    elif len(value) > limit:
        problem = f"is longer than {limit} characters (OYE_MAX_ID_LENGTH)"
    elif _CONTROL.search(value):
        problem = "contains control characters"
    elif value != value.strip():
        problem = "starts or ends with whitespace"
    if problem is not None:
        raise HTTPException(UNPROCESSABLE, f"charge point id {problem}")
    return value


ChargePointId = Annotated[str, Depends(charge_point_id)]

_BAD_ID: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorBody, "description": "The charge point id or the password is not valid"}
}


SET_PASSWORD_DESCRIPTION = f"""\
The charger sends it as HTTP Basic `{{chargePointId}}:{{password}}` (OCPP security profile 1
or 2). A chosen password must be {MIN_CHARGER_PASSWORD} to {MAX_CHARGER_PASSWORD} printable
ASCII characters; without one, a random {MAX_CHARGER_PASSWORD}-character password is
generated and shown in this answer only. Only its argon2id hash is kept. The charger
becomes approved (anything it presented while pending is dropped)."""


def _conflict(exc: CredentialConflict) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, f"{exc}; try again")


@router.get("/pending", summary="Chargers waiting for your approval")
async def pending_chargers(store: Credentials) -> list[PendingCharger]:
    """Unknown chargers that tried to connect while `OYE_UNKNOWN_CHARGERS=pending`, the
    longest-waiting first. Approve one with `POST /api/chargers/{chargePointId}/approve`."""
    return [
        PendingCharger(
            charge_point_id=record.charge_point_id,
            since=pending_since(record),
            address=record.pending_address,
            presented_password=record.pending_password_hash is not None,
        )
        for record in await store.pending()
    ]


@router.put(
    "/{chargePointId:path}/password",
    summary="Set or rotate a charger's password (and approve it)",
    description=SET_PASSWORD_DESCRIPTION,
    responses=_BAD_ID,
)
async def set_charger_password(
    store: Credentials,
    user: CurrentUser,
    cp: ChargePointId,
    body: Annotated[
        ChargerPassword | None,
        Body(
            openapi_examples={
                "generate": {"summary": "Let the proxy generate one", "value": {}},
                "choose": {
                    "summary": "Choose it yourself",
                    "value": {"password": "correct-horse-battery-staple"},
                },
            }
        ),
    ] = None,
) -> PasswordSet:
    chosen = body.password if body is not None else None
    if chosen is not None and (problem := password_problem(chosen)) is not None:
        raise HTTPException(UNPROCESSABLE, f"password {problem}")
    password = chosen if chosen is not None else new_charger_password()
    try:
        record = await store.set_password(cp, password)
    except CredentialConflict as exc:
        raise _conflict(exc) from None
    log.info(
        "charger %s: password %s by %s; approved",
        cp,
        "chosen" if chosen is not None else "generated",
        user,
    )
    view = Admission.of(record).model_dump()
    return PasswordSet(**view, password=None if chosen is not None else password)


@router.delete(
    "/{chargePointId:path}/password",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a charger: its password and its approval",
    responses={
        404: {"model": ErrorBody, "description": "Neither approved nor with a password"},
        **_BAD_ID,
    },
)
async def revoke_charger_password(store: Credentials, user: CurrentUser, cp: ChargePointId) -> None:
    """The password and the approval are removed: the charger is then one the proxy does
    not know, which `OYE_UNKNOWN_CHARGERS` decides about (`reject`: 403, `pending`: held
    for approval; `accept`, the default, still lets it in, without a password). Give it a
    new password with `PUT` to let it back in."""
    try:
        record = await store.revoke(cp)
    except CredentialConflict as exc:
        raise _conflict(exc) from None
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"charger {cp!r} has nothing to revoke")
    log.info("charger %s: revoked by %s (password and approval)", cp, user)


@router.post(
    "/{chargePointId:path}/approve",
    summary="Approve a pending charger",
    responses={404: {"model": ErrorBody, "description": "Nothing to approve"}, **_BAD_ID},
)
async def approve_charger(store: Credentials, user: CurrentUser, cp: ChargePointId) -> Admission:
    """A pending charger goes on the allow-list; a password it presented while pending
    becomes its password. Approving an approved charger changes nothing."""
    try:
        record = await store.approve(cp)
    except CredentialConflict as exc:
        raise _conflict(exc) from None
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"charger {cp!r} is not pending approval")
    log.info("charger %s: approved by %s", cp, user)
    return Admission.of(record)
