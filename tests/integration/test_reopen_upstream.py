"""oye_relay.upstream.reopen_upstream: a dropped CSMS connection opened again, or the
reason the charger must go instead, against real WebSocket servers."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from oye_relay.keepalive import Keepalive
from oye_relay.legs import WebSocketLeg
from oye_relay.upstream import CloseCharger, UpstreamOptions, reopen_upstream
from tests.support.legs import csms

pytestmark = pytest.mark.integration

Answer = Callable[[ServerConnection, Request], Response | None]


def options(url: str) -> UpstreamOptions:
    return UpstreamOptions(
        base_url=url,
        ssl_context=None,
        open_timeout=5.0,
        keepalive=Keepalive(interval=60.0, timeout=60.0),
        max_size=2**20,
    )


async def reopen(url: str | None) -> WebSocketLeg | CloseCharger | None:
    found = await reopen_upstream(
        lambda: options(url) if url is not None else None,
        "CP-1",
        subprotocol="ocpp1.6",
        offer=["ocpp1.6"],
        authorization=None,
        user_agent=None,
        backoff_max=0.1,
    )
    assert found is None or isinstance(found, (WebSocketLeg, CloseCharger))
    return found


def refusing(*statuses: HTTPStatus) -> Answer:
    """Refuse with each status in turn, then accept."""
    left = list(statuses)

    def answer(connection: ServerConnection, request: Request) -> Response | None:
        return connection.respond(left.pop(0), "no\n") if left else None

    return answer


async def test_a_csms_in_trouble_is_tried_again_until_it_accepts() -> None:
    answer = refusing(HTTPStatus.SERVICE_UNAVAILABLE, HTTPStatus.BAD_GATEWAY)
    async with csms(process_request=answer, subprotocols=["ocpp1.6"]) as (url, accepted):
        leg = await reopen(url)
        assert isinstance(leg, WebSocketLeg)
        assert leg.subprotocol == "ocpp1.6"
        assert (await accepted.get()).request.path == "/ocpp/CP-1"  # type: ignore[union-attr]
        await leg.close()


async def test_a_csms_that_refuses_the_charger_closes_it_with_1008() -> None:
    refused = refusing(HTTPStatus.FORBIDDEN)
    async with csms(process_request=refused, subprotocols=["ocpp1.6"]) as (url, accepted):
        assert await reopen(url) == CloseCharger(1008, "CSMS refused: HTTP 403")
        assert accepted.empty()


async def test_a_csms_that_no_longer_speaks_the_subprotocol_closes_both_with_1002() -> None:
    """It answers without one (the charger's is settled: only that one is offered)."""
    async with csms(process_request=refusing()) as (url, accepted):
        assert await reopen(url) == CloseCharger(1002, "CSMS no longer speaks this subprotocol")
        connection = await accepted.get()
        await connection.wait_closed()
        assert connection.close_code == 1002


async def test_forwarding_switched_off_meanwhile_ends_the_attempts() -> None:
    assert await reopen(None) is None
