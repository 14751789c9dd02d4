"""A typed face for the untyped ``ocpp`` package (2.1.0), and its fixes we rely on.

Everything in this package that touches ``ocpp`` goes through here:

* :class:`Ocpp16Peer`, :class:`Ocpp201Peer`, :class:`Ocpp21Peer` are the package's
  ``ChargePoint`` classes (a *peer*: charger or CSMS) under a typed stub, so subclasses
  stay checkable with ``mypy --strict``.
* :func:`on` and :func:`after` are ``ocpp.routing``'s decorators with types that keep the
  decorated method's signature.
* Unhandled actions are answered with the spec's error codes. ``ocpp`` 2.1.0 swaps them
  (unknown action -> ``NotSupported``, known without handler -> ``NotImplemented``) and
  answers nothing at all on 2.1; here an unknown action gets ``NotImplemented`` and a known
  one without handler ``NotSupported`` (OCPP-J 1.6 §4.2.3, 2.0.1 Part 4 §4.3).

Quirks of ``ocpp`` 2.1.0 the callers must still mind (see the OCPP notes §8): handler
payloads arrive as snake_case keyword arguments (accept ``**kwargs``); 1.6
SetChargingProfile/RemoteStartTransaction requests and GetCompositeSchedule responses
are validated as ``Decimal`` (and the parsed ``Decimal`` values reach the handler);
``Decimal`` values are written with one decimal (16.25 -> 16.2), so return ``float``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import ocpp.routing
from ocpp.exceptions import NotImplementedError as OcppNotImplementedError
from ocpp.exceptions import NotSupportedError as OcppNotSupportedError
from ocpp.exceptions import OCPPError
from ocpp.v16.enums import Action as Action16
from ocpp.v21.enums import Action as Action21
from ocpp.v201.enums import Action as Action201

_F = TypeVar("_F", bound=Callable[..., Any])


class Connection(Protocol):
    """What a peer needs of its socket: text frames in and out."""

    async def recv(self) -> str | bytes: ...

    async def send(self, message: str) -> None: ...


if TYPE_CHECKING:

    class _ChargePoint:
        """The part of ``ocpp.charge_point.ChargePoint`` this project uses."""

        id: str
        route_map: dict[str, dict[str, Any]]

        def __init__(
            self,
            id: str,
            connection: Connection,
            response_timeout: float = 30,
            logger: logging.Logger = ...,
        ) -> None: ...

        async def start(self) -> None: ...

        async def route_message(self, raw_msg: str | bytes) -> None: ...

        async def call(
            self,
            payload: Any,
            suppress: bool = True,
            unique_id: str | None = None,
            skip_schema_validation: bool = False,
        ) -> Any: ...

        async def _handle_call(self, msg: Any) -> Any: ...

    _ChargePoint16 = _ChargePoint
    _ChargePoint201 = _ChargePoint
    _ChargePoint21 = _ChargePoint
else:
    from ocpp.v16 import ChargePoint as _ChargePoint16
    from ocpp.v21 import ChargePoint as _ChargePoint21
    from ocpp.v201 import ChargePoint as _ChargePoint201

_ACTIONS_16 = frozenset(action.value for action in Action16)
_ACTIONS_201 = frozenset(action.value for action in Action201)
_ACTIONS_21 = frozenset(action.value for action in Action21)


def on(action: str, *, skip_schema_validation: bool = False) -> Callable[[_F], _F]:
    """Mark a peer method as the handler of an incoming CALL (``ocpp.routing.on``)."""
    decorator: Callable[[_F], _F] = ocpp.routing.on(
        action, skip_schema_validation=skip_schema_validation
    )
    return decorator


def after(action: str) -> Callable[[_F], _F]:
    """Mark a peer method to run after the reply to a CALL was sent (``ocpp.routing.after``).

    Return ``None`` from it (not a coroutine): ``ocpp`` would run a returned coroutine as
    a task nobody owns. Start follow-up work as an owned task instead.
    """
    decorator: Callable[[_F], _F] = ocpp.routing.after(action)
    return decorator


def unhandled_action_error(action: str, known_actions: frozenset[str]) -> OCPPError:
    """The spec's CALLERROR for a CALL without handler: known action or not."""
    if action in known_actions:
        return OcppNotSupportedError(
            description=f"{action} is not supported", details={"action": action}
        )
    return OcppNotImplementedError(
        description=f"{action} is not a known action", details={"action": action}
    )


def _has_handler(route_map: dict[str, dict[str, Any]], action: str) -> bool:
    return "_on_action" in route_map.get(action, {})


class Ocpp16Peer(_ChargePoint16):
    """An OCPP 1.6 peer (``ocpp.v16.ChargePoint``) with spec error codes."""

    async def _handle_call(self, msg: Any) -> Any:
        if not _has_handler(self.route_map, msg.action):
            raise unhandled_action_error(msg.action, _ACTIONS_16)
        return await super()._handle_call(msg)


class Ocpp201Peer(_ChargePoint201):
    """An OCPP 2.0.1 peer (``ocpp.v201.ChargePoint``) with spec error codes."""

    async def _handle_call(self, msg: Any) -> Any:
        if not _has_handler(self.route_map, msg.action):
            raise unhandled_action_error(msg.action, _ACTIONS_201)
        return await super()._handle_call(msg)


class Ocpp21Peer(_ChargePoint21):
    """An OCPP 2.1 peer (``ocpp.v21.ChargePoint``) that answers unhandled CALLs at all."""

    async def _handle_call(self, msg: Any) -> Any:
        if not _has_handler(self.route_map, msg.action):
            raise unhandled_action_error(msg.action, _ACTIONS_21)
        return await super()._handle_call(msg)


def utc_iso(moment: datetime) -> str:
    """An OCPP timestamp: UTC, whole seconds, ``Z`` suffix."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime | None:
    """Parse an OCPP timestamp (``Z`` or offset); naive times are taken as UTC."""
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def utc_now() -> datetime:
    """Now, in UTC, to the whole second (what the simulator puts on the wire)."""
    return datetime.now(UTC).replace(microsecond=0)
