"""``POST /api/change-password``: the signed-in user sets a new password."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, status

from oye_api.deps import CurrentUser, State, client_address
from oye_api.models import ChangePassword, ErrorBody

router = APIRouter(prefix="/api", tags=["auth"])


@router.post(
    "/change-password",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Change your password (at least 12 characters)",
    responses={403: {"model": ErrorBody, "description": "currentPassword is wrong"}},
)
async def change_password(
    request: Request, state: State, user: CurrentUser, body: ChangePassword
) -> None:
    """`currentPassword` is optional (the Basic credentials already prove who you are),
    but if given it must be right; a wrong one counts as a failed login."""
    if body.current_password is not None and not await state.users.verify(
        user, body.current_password
    ):
        await state.throttle.record_failure(client_address(request))
        raise HTTPException(status.HTTP_403_FORBIDDEN, "currentPassword is wrong")
    await state.users.set_password(user, body.new_password)
