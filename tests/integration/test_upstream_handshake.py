"""oye_relay.upstream_handshake: the relay opens its upstream legs itself, checking the
CSMS's answer as websockets' client did, against real servers."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import InvalidHandshake
from websockets.http11 import Request, Response
from websockets.utils import accept_key

from oye_relay.upstream_handshake import (
    UpstreamRefused,
    check_response,
    handshake_request,
    parse_head,
    target_of,
)
from tests.support.inbox import Inbox, exchange
from tests.support.legs import csms, open_to

pytestmark = pytest.mark.integration

KEY = base64.b64encode(b"0123456789abcdef").decode()


def answer(**extra: str) -> Headers:
    headers = Headers(
        Upgrade="websocket", Connection="Upgrade", **{"Sec-WebSocket-Accept": accept_key(KEY)}
    )
    for name, value in extra.items():
        name = name.replace("_", "-")
        if name in headers:
            del headers[name]
        headers[name] = value
    return headers


@asynccontextmanager
async def raw_server(
    respond: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[str]:
    """A TCP server that answers as ``respond`` does: for answers no WebSocket server gives."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await respond(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/ocpp"


async def request_key(reader: asyncio.StreamReader) -> str:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    (line,) = [x for x in head.split("\r\n") if x.lower().startswith("sec-websocket-key:")]
    return line.split(":", 1)[1].strip()


async def test_the_request_is_what_the_csms_sees_and_messages_go_both_ways() -> None:
    async with csms(select_subprotocol=lambda _, offered: offered[-1]) as (url, accepted):
        leg = await open_to(url, authorization="Basic eDp5", user_agent="Charger/1.0")
        peer = await accepted.get()
        request = peer.request
        assert request is not None
        assert request.path == "/ocpp/CP%2F1%20%C3%A4"
        assert request.headers["Sec-WebSocket-Protocol"] == "ocpp2.0.1, ocpp1.6"
        assert request.headers["Authorization"] == "Basic eDp5"
        assert request.headers["User-Agent"] == "Charger/1.0"
        assert leg.subprotocol == "ocpp1.6" == peer.subprotocol
        await exchange(leg, peer, '[2,"1","Heartbeat",{}]', '[3,"1",{}]')
        await leg.close()
        await peer.wait_closed()
        assert peer.close_code == 1000


async def test_permessage_deflate_is_offered_and_used_when_the_csms_accepts_it() -> None:
    async with csms(compression="deflate") as (url, accepted):
        leg = await open_to(url)
        peer = await accepted.get()
        assert peer.request is not None
        assert "permessage-deflate" in peer.request.headers["Sec-WebSocket-Extensions"]
        text = '[2,"1","DataTransfer",{"data":"' + "x" * 5000 + '"}]'
        await exchange(leg, peer, text, text)
        await leg.close()


async def test_a_refusal_carries_its_status_and_headers() -> None:
    def refuse(connection: ServerConnection, request: Request) -> Response:
        response = connection.respond(401, "no\n")
        response.headers["WWW-Authenticate"] = 'Basic realm="csms"'
        return response

    async with csms(process_request=refuse) as (url, _):
        with pytest.raises(UpstreamRefused) as refused:
            await open_to(url)
    assert refused.value.status == 401
    assert refused.value.headers["WWW-Authenticate"] == 'Basic realm="csms"'


async def test_frames_sent_with_the_101_reach_the_sink() -> None:
    async def answer_and_talk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        key = await request_key(reader)
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept_key(key).encode() + b"\r\n\r\n"
            b"\x81\x02hi"  # a text frame in the same write
        )
        await writer.drain()
        await reader.read()  # until the leg goes

    async with raw_server(answer_and_talk) as url:
        leg = await open_to(url, subprotocols=[])
        inbox = Inbox()
        leg.attach(inbox)
        assert await inbox.holding(1) == ["hi"]
        assert leg.subprotocol is None
        leg.transport.abort()


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: wrong=\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\n" + b"X: y\r\n" * 200 + b"\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"x" * 20_000,
    ],
    ids=["accept key", "no upgrade", "not http", "too many headers", "endless head"],
)
async def test_an_answer_that_is_no_websocket_handshake_is_refused(reply: bytes) -> None:
    async def say(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(reply)
        await writer.drain()
        await reader.read()

    async with raw_server(say) as url:
        with pytest.raises(InvalidHandshake):
            await open_to(url)


async def test_a_csms_that_hangs_up_or_stays_silent_fails_the_open() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")

    async with raw_server(hang_up) as url:
        with pytest.raises(ConnectionError):
            await open_to(url)

    silent = asyncio.Event()

    async def say_nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):  # the relay gives up: it resets
            await reader.read()
        silent.set()

    async with raw_server(say_nothing) as url:
        with pytest.raises(TimeoutError):
            await open_to(url, open_timeout=0.2)
        await silent.wait()  # the socket was not left open


def test_the_request_names_the_host_as_websockets_does() -> None:
    assert target_of("ws://csms.example/ocpp/").host_header == "csms.example"
    assert target_of("wss://csms.example:8443/ocpp").host_header == "csms.example:8443"
    assert target_of("ws://[::1]:9000/x").host_header == "[::1]:9000"
    request = handshake_request(
        target_of("ws://csms.example/ocpp/"),
        "CP 1",
        KEY,
        subprotocols=[],
        authorization=None,
        user_agent=None,
    ).decode()
    assert request.startswith("GET /ocpp/CP%201 HTTP/1.1\r\nHost: csms.example\r\n")
    assert "Sec-WebSocket-Protocol" not in request
    assert "User-Agent" not in request
    assert request.endswith("\r\n\r\n")
    with pytest.raises(InvalidHandshake):
        handshake_request(
            target_of("ws://csms.example/ocpp"),
            "CP",
            KEY,
            subprotocols=["ocpp1.6"],
            authorization="Basic x\r\nX-Evil: 1",
            user_agent=None,
        )


def test_the_answer_head_is_parsed_and_checked_as_websockets_does() -> None:
    status, headers = parse_head(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade:  websocket \r\nA: b"
    )
    assert status == 101
    assert headers["Upgrade"] == "websocket"
    for bad in (
        b"HTTP/1.0 101 x",
        b"HTTP/1.1 1O1 x",
        b"HTTP/1.1 101 x\r\n folded",
        b"HTTP/1.1 101\r\nnocolon",
    ):
        with pytest.raises(InvalidHandshake):
            parse_head(bad)

    assert check_response(answer(), KEY, ["ocpp1.6"]) == (None, [])
    assert (
        check_response(answer(Sec_WebSocket_Protocol="ocpp1.6"), KEY, ["ocpp1.6"])[0] == "ocpp1.6"
    )
    _, extensions = check_response(
        answer(Sec_WebSocket_Extensions="permessage-deflate; client_max_window_bits=12"), KEY, []
    )
    assert [e.name for e in extensions] == ["permessage-deflate"]
    for wrong in (
        answer(Sec_WebSocket_Protocol="ocpp2.0.1"),  # not offered
        answer(Sec_WebSocket_Extensions="x-other"),
        answer(Sec_WebSocket_Extensions="permessage-deflate; bogus"),
        answer(Connection="keep-alive"),
        answer(Upgrade="h2c"),
    ):
        with pytest.raises(InvalidHandshake):
            check_response(wrong, KEY, ["ocpp1.6"])
