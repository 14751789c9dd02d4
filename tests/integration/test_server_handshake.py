"""oye_relay.server_handshake: the relay answers the charger's handshake itself, checking
it as websockets' server did, against real clients."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from oye_relay.legs import WebSocketLeg
from oye_relay.server_handshake import (
    Answer,
    BadRequest,
    ServerHandshake,
    UpgradeRequest,
    negotiate_extensions,
    parse_request,
)
from tests.support.inbox import Inbox, exchange

pytestmark = pytest.mark.integration

KEY = "dGhlIHNhbXBsZSBub25jZQ=="

Decide = Callable[[ServerHandshake, UpgradeRequest], Coroutine[Any, Any, None]]


def head(*lines: str, request_line: str = "GET /ocpp/CP-1 HTTP/1.1") -> bytes:
    base = [
        request_line,
        "Host: relay",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {KEY}",
        "Sec-WebSocket-Version: 13",
    ]
    names = {line.split(":", 1)[0].lower() for line in lines}
    kept = [line for line in base[1:] if line.split(":", 1)[0].lower() not in names]
    return "\r\n".join([base[0], *kept, *(x for x in lines if not x.endswith(":"))]).encode()


@asynccontextmanager
async def listening(
    decide: Decide, handshake_seconds: float = 5.0
) -> AsyncIterator[tuple[str, int]]:
    shaking: set[ServerHandshake] = set()
    server = await asyncio.get_running_loop().create_server(
        lambda: ServerHandshake(decide, handshake_seconds, 2**20, shaking), "127.0.0.1", 0
    )
    try:
        yield "127.0.0.1", server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for shake in list(shaking):
            shake.abort()


async def raw_exchange(address: tuple[str, int], data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(data)
        async with asyncio.timeout(5):
            return await reader.read()  # until the relay closes
    finally:
        writer.close()


def test_a_valid_upgrade_request_is_parsed() -> None:
    request = parse_request(head("Sec-WebSocket-Protocol: ocpp1.6", "X-Long:   padded  "))
    assert request.path == "/ocpp/CP-1"
    assert request.key == KEY
    assert request.headers["Sec-WebSocket-Protocol"] == "ocpp1.6"
    assert request.headers["X-Long"] == "padded"


@pytest.mark.parametrize(
    ("request_head", "status", "says"),
    [
        (head(request_line="POST /ocpp/CP-1 HTTP/1.1"), 405, "expected GET"),
        (head(request_line="GET /ocpp/CP-1 HTTP/1.0"), 505, "expected HTTP/1.1"),
        (head(request_line="GET /ocpp/CP-ä HTTP/1.1"), 400, "valid HTTP request"),
        (head(request_line="GET ocpp HTTP/1.1"), 400, "valid HTTP request"),
        (head("Connection: keep-alive"), 426, "invalid Connection header: keep-alive"),
        (head("Upgrade: h2c"), 426, "invalid Upgrade header: h2c"),
        (head("Upgrade:"), 426, "missing Upgrade header"),
        (head("Sec-WebSocket-Key:"), 400, "missing Sec-WebSocket-Key header"),
        (head("Sec-WebSocket-Key: c2hvcnQ="), 400, "invalid Sec-WebSocket-Key header"),
        (head("Sec-WebSocket-Version: 8"), 400, "invalid Sec-WebSocket-Version header: 8"),
        (head(" folded: line"), 400, "invalid HTTP header line"),
        (head(*(f"X-{n}: y" for n in range(200))), 400, "too many HTTP headers"),
        (head("Authorization: Basic a", "Authorization: Basic b"), 400, "multiple values"),
    ],
)
def test_what_websockets_refuses_is_refused_with_its_status(
    request_head: bytes, status: int, says: str
) -> None:
    with pytest.raises(BadRequest) as refused:
        parse_request(request_head)
    assert refused.value.answer.status == status
    assert says in refused.value.answer.text
    if status == 426:
        assert refused.value.answer.headers == {"Upgrade": "websocket"}


def test_permessage_deflate_is_accepted_as_websockets_accepts_it() -> None:
    request = parse_request(
        head("Sec-WebSocket-Extensions: x-unknown, permessage-deflate; client_max_window_bits")
    )
    header, extensions = negotiate_extensions(request.headers)
    assert header is not None
    assert header.startswith("permessage-deflate")
    assert [e.name for e in extensions] == ["permessage-deflate"]
    assert negotiate_extensions(parse_request(head()).headers) == (None, [])


async def test_a_websockets_client_gets_its_leg_with_subprotocol_and_compression() -> None:
    legs: asyncio.Queue[WebSocketLeg] = asyncio.Queue()

    async def accept(shake: ServerHandshake, request: UpgradeRequest) -> None:
        leg = shake.accept(request, "ocpp1.6", negotiate_extensions(request.headers))
        assert leg is not None
        await legs.put(leg)

    async with (
        listening(accept) as (host, port),
        connect(f"ws://{host}:{port}/ocpp/CP-1", subprotocols=[Subprotocol("ocpp1.6")]) as charger,
    ):
        leg = await legs.get()
        assert charger.subprotocol == "ocpp1.6"
        assert charger.protocol.extensions
        text = '[2,"1","DataTransfer",{"data":"' + "x" * 3000 + '"}]'
        await exchange(leg, charger, text, text)


async def test_a_refusal_reaches_the_client_with_its_headers() -> None:
    async def refuse(shake: ServerHandshake, request: UpgradeRequest) -> None:
        shake.refuse(Answer(401, "who are you?\n", {"WWW-Authenticate": 'Basic realm="x"'}))

    async with listening(refuse) as (host, port):
        with pytest.raises(InvalidStatus) as refused:
            await connect(f"ws://{host}:{port}/ocpp/CP-1")
    response = refused.value.response
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="x"'
    assert response.body == b"who are you?\n"


async def test_frames_sent_before_the_101_reach_the_leg() -> None:
    legs: asyncio.Queue[WebSocketLeg] = asyncio.Queue()

    async def accept(shake: ServerHandshake, request: UpgradeRequest) -> None:
        leg = shake.accept(request, None, (None, []))
        assert leg is not None
        await legs.put(leg)

    async with listening(accept) as address:
        reader, writer = await asyncio.open_connection(*address)
        # A masked text frame "hi" right behind the request, in one write.
        writer.write(head() + b"\r\n\r\n" + b"\x81\x82\x00\x00\x00\x00hi")
        leg = await legs.get()
        inbox = Inbox()
        leg.attach(inbox)
        assert await inbox.holding(1) == ["hi"]
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101 ")
        writer.close()


async def test_a_bad_or_endless_head_is_answered_400_and_closed() -> None:
    async def never(shake: ServerHandshake, request: UpgradeRequest) -> None:
        raise AssertionError("not a valid request")

    async with listening(never) as address:
        answer = await raw_exchange(address, head("Sec-WebSocket-Version: 7") + b"\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert answer.endswith(b"invalid Sec-WebSocket-Version header: 7.\n")
        answer = await raw_exchange(address, b"GET / HTTP/1.1\r\nX: " + b"y" * 20_000)
        assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")


async def test_a_silent_client_is_cut_after_the_timeout_and_a_leaving_one_is_forgotten() -> None:
    deciding, cancelled = asyncio.Event(), asyncio.Event()

    async def slow(shake: ServerHandshake, request: UpgradeRequest) -> None:
        deciding.set()
        try:
            await asyncio.Future()  # the relay still deciding (a slow CSMS, say)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with listening(slow, handshake_seconds=0.3) as address:
        reader, writer = await asyncio.open_connection(*address)
        async with asyncio.timeout(5):
            assert await reader.read() == b""  # cut, unanswered
        writer.close()

    async with listening(slow, handshake_seconds=60) as address:  # no timer helps here
        reader, writer = await asyncio.open_connection(*address)
        writer.write(head() + b"\r\n\r\n")
        await deciding.wait()
        writer.close()  # the charger leaves while the relay decides
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
        async with asyncio.timeout(5):
            await cancelled.wait()  # at once, not when a timer fires
