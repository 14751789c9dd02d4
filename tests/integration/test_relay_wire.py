"""The relay on the wire: bytes, order, handshakes, ids and NATS, with raw WebSocket peers."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import json

import pytest
from nats.aio.client import Client
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.connection import Connection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from oye_relay.legs import WebSocketLeg
from oye_relay.session import ChargerSession
from oye_shared import headers as h
from oye_shared.settings import Settings
from oye_shared.subjects import Subjects, encode_token
from tests.conftest import free_port
from tests.support.raw_csms import RawCsms
from tests.support.relay import event_body, eventually, relay_running, watching

pytestmark = pytest.mark.integration


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def test_frames_cross_unchanged_both_ways_and_reach_nats_in_order(
    settings: Settings, nc: Client
) -> None:
    """Odd spacing and number formats arrive byte for byte, and NATS sees every frame."""
    weird_call = '[2, "m1",  "Heartbeat" , {"x": 16.0, "y": 1e2, "z": "\\u00e9"}]'
    async with RawCsms() as csms:
        upstream = settings.model_copy(update={"upstream_url": csms.url})
        async with (
            relay_running(upstream) as relay,
            watching(nc, "oye.frames.>") as frames,
            connect(relay.url("CP1"), subprotocols=["ocpp1.6"]) as charger,  # type: ignore[list-item]
        ):
            await charger.send(weird_call)
            assert json.loads(await charger.recv()) == [3, "m1", {}]
            connected = await csms.wait_connection("CP1")
            assert (await csms.wait_received(connected, 1))[0] == weird_call
            await connected.connection.send('[2,"c1","Reset",{"type":"Soft"}]')
            assert await charger.recv() == '[2,"c1","Reset",{"type":"Soft"}]'
            await charger.send('[3,"c1",{"status":"Accepted"}]')
            assert (await csms.wait_received(connected, 2))[1] == '[3,"c1",{"status":"Accepted"}]'

            messages = await frames.wait_for_count(4)
    subjects = Subjects("oye")
    assert [m.subject for m in messages] == [
        subjects.frames("CP1", "UPSTREAM"),  # type: ignore[arg-type]
        subjects.frames("CP1", "DOWNSTREAM"),  # type: ignore[arg-type]
        subjects.frames("CP1", "DOWNSTREAM"),  # type: ignore[arg-type]
        subjects.frames("CP1", "UPSTREAM"),  # type: ignore[arg-type]
    ]
    assert messages[0].data.decode() == weird_call
    assert messages[1].data == b'[3, "m1", {}]'
    first, answer, reset, reset_answer = (m.headers or {} for m in messages)
    assert first[h.DIRECTION] == "UPSTREAM"
    assert first[h.CHARGE_POINT] == "CP1"
    assert first[h.MESSAGE_TYPE] == "CALL"
    assert first[h.MESSAGE_ID] == "m1"
    assert first[h.ACTION] == "Heartbeat"
    assert first[h.SUBPROTOCOL] == "ocpp1.6"
    assert first[h.RELAY] == settings.relay_id
    assert first[h.FRAME_ID] == first[h.NATS_MSG_ID]
    assert first[h.TIME].endswith("Z")
    assert len({m.headers[h.FRAME_ID] for m in messages if m.headers}) == 4
    assert (answer[h.MESSAGE_TYPE], answer[h.ACTION]) == ("CALLRESULT", "Heartbeat")
    assert (reset[h.DIRECTION], reset[h.ACTION]) == ("DOWNSTREAM", "Reset")
    assert (reset_answer[h.MESSAGE_TYPE], reset_answer[h.ACTION]) == ("CALLRESULT", "Reset")


def upstream_to(settings: Settings, csms: RawCsms) -> Settings:
    return settings.model_copy(update={"upstream_url": csms.url})


async def test_the_csms_chooses_the_subprotocol_by_the_chargers_order(settings: Settings) -> None:
    """Charger offers 2.0.1 then 1.6; a 1.6-only CSMS makes both legs 1.6."""
    async with (
        RawCsms(subprotocols=("ocpp1.6",)) as csms,
        relay_running(upstream_to(settings, csms)) as relay,
        connect(relay.url("CP2"), subprotocols=["ocpp2.0.1", "ocpp1.6"]) as charger,  # type: ignore[list-item]
    ):
        connected = await csms.wait_connection("CP2")
        assert charger.subprotocol == "ocpp1.6"
        assert connected.connection.subprotocol == "ocpp1.6"
        assert connected.headers["Sec-WebSocket-Protocol"] == "ocpp2.0.1, ocpp1.6"


async def test_no_common_subprotocol_completes_without_one_then_closes(settings: Settings) -> None:
    """As OCPP-J says: handshake without Sec-WebSocket-Protocol, then close."""
    async with (
        RawCsms(subprotocols=("ocpp2.0.1",)) as csms,
        relay_running(upstream_to(settings, csms)) as relay,
        connect(relay.url("CP3"), subprotocols=["ocpp1.6"]) as charger,  # type: ignore[list-item]
    ):
        assert charger.subprotocol is None
        with pytest.raises(ConnectionClosed) as closed:
            await charger.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1002


async def test_basic_auth_is_passed_through_and_a_refusal_passed_back(settings: Settings) -> None:
    """The CSMS sees the charger's Authorization; a wrong password gets the CSMS's 401."""
    async with (
        RawCsms(passwords={"CP4": "s3cret-password"}) as csms,
        relay_running(upstream_to(settings, csms)) as relay,
    ):
        good = basic("CP4", "s3cret-password")
        async with connect(
            relay.url("CP4"),
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            additional_headers={"Authorization": good},
        ) as charger:
            connected = await csms.wait_connection("CP4")
            assert connected.headers["Authorization"] == good
            assert charger.subprotocol == "ocpp1.6"
        with pytest.raises(InvalidStatus) as refused:
            async with connect(
                relay.url("CP4"),
                subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                additional_headers={"Authorization": basic("CP4", "wrong")},
            ):
                pass
        assert refused.value.response.status_code == 401
        assert refused.value.response.headers["WWW-Authenticate"] == 'Basic realm="csms"'


@pytest.mark.parametrize("status", [403, 404])
async def test_a_csms_refusal_reaches_the_charger_as_the_same_status(
    settings: Settings, status: int
) -> None:
    """A CSMS that does not know the charger refuses it through the proxy."""
    async with (
        RawCsms(refuse={"CP5": status}) as csms,
        relay_running(upstream_to(settings, csms)) as relay,
    ):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(relay.url("CP5"), subprotocols=["ocpp1.6"]):  # type: ignore[list-item]
                pass
        assert refused.value.response.status_code == status


@pytest.mark.parametrize(
    ("path", "status"), [("/ocpp/", 400), ("/ocpp/" + "x" * 200, 400), ("/elsewhere/CP", 404)]
)
async def test_bad_paths_are_refused_before_any_upstream(
    settings: Settings, path: str, status: int
) -> None:
    """An empty, over-long or misplaced id gets a clear HTTP status."""
    async with RawCsms() as csms, relay_running(upstream_to(settings, csms)) as relay:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"ws://127.0.0.1:{relay.settings.ocpp_port}{path}"):
                pass
        assert refused.value.response.status_code == status
        assert csms.connections == []


@pytest.mark.parametrize(
    "charge_point_id", ["CP.1", "CP*2", "CP>3", "CP 4", "100%", "Zürich-Säule", "a.b c*d>e%f"]
)
async def test_odd_ids_round_trip_to_the_csms_and_onto_one_nats_token(
    settings: Settings, nc: Client, charge_point_id: str
) -> None:
    """The CSMS gets the id re-encoded once; NATS gets it as one reversible token."""
    async with (
        RawCsms() as csms,
        relay_running(upstream_to(settings, csms)) as relay,
        watching(nc, "oye.frames.>") as frames,
        connect(relay.url(charge_point_id), subprotocols=["ocpp1.6"]) as charger,  # type: ignore[list-item]
    ):
        await charger.send('[2,"1","Heartbeat",{}]')
        await charger.recv()
        connected = await csms.wait_connection(charge_point_id)
        (message, *_) = await frames.wait_for_count(1)
    assert connected.charge_point_id == charge_point_id
    assert message.subject == f"oye.frames.{encode_token(charge_point_id)}.UPSTREAM"
    assert Subjects("oye").charge_point_of(message.subject) == charge_point_id
    assert (message.headers or {})[h.CHARGE_POINT] == charge_point_id


async def test_malformed_frames_are_forwarded_flagged_and_survived(
    settings: Settings, nc: Client
) -> None:
    """Garbage goes through unchanged, NATS flags it, and the relay keeps relaying."""
    garbage = ["not json", "{}", "[9,1]", '[2,"x","Heartbeat"]', "[" * 5000, ""]
    async with (
        RawCsms() as csms,
        relay_running(upstream_to(settings, csms)) as relay,
        watching(nc, "oye.frames.>") as frames,
        connect(relay.url("CP6"), subprotocols=["ocpp1.6"]) as charger,  # type: ignore[list-item]
    ):
        for text in garbage:
            await charger.send(text)
        await charger.send(b'[2,"b","Heartbeat",{}]')  # binary frames pass as binary
        await charger.send('[2,"ok","Heartbeat",{}]')
        assert json.loads(await charger.recv())[1] == "b"
        assert json.loads(await charger.recv())[1] == "ok"
        connected = await csms.wait_connection("CP6")
        received = await csms.wait_received(connected, len(garbage) + 2)
        messages = await frames.wait_for_count(len(garbage) + 4)
    assert received[: len(garbage)] == garbage
    assert received[len(garbage)] == b'[2,"b","Heartbeat",{}]'
    flagged = [m for m in messages if (m.headers or {}).get(h.MESSAGE_TYPE) == h.MALFORMED]
    assert [m.data.decode() for m in flagged] == garbage
    assert (flagged[3].headers or {})[h.ERROR] == "bad-shape"
    assert (flagged[3].headers or {})[h.MESSAGE_ID] == "x"
    binary = next(m for m in messages if m.data == b'[2,"b","Heartbeat",{}]')
    assert (binary.headers or {})[h.BINARY] == "1"


async def test_a_binary_answer_to_a_csms_call_reaches_it_as_binary(settings: Settings) -> None:
    async with (
        RawCsms() as csms,
        relay_running(upstream_to(settings, csms)) as relay,
        connect(relay.url("CP-BIN"), subprotocols=["ocpp1.6"]) as charger,  # type: ignore[list-item]
    ):
        connected = await csms.wait_connection("CP-BIN")
        await connected.connection.send('[2,"q1","GetConfiguration",{}]')
        assert json.loads(await charger.recv())[1] == "q1"
        await charger.send(b'[3,"q1",{"configurationKey":[]}]')
        received = await csms.wait_received(connected, 1)
    assert received == [b'[3,"q1",{"configurationKey":[]}]']


async def test_a_second_connection_with_the_same_id_replaces_the_first(
    settings: Settings, nc: Client
) -> None:
    """The old socket is closed and a 'replaced' event is published."""
    async with (
        RawCsms() as csms,
        relay_running(upstream_to(settings, csms)) as relay,
        watching(nc, "oye.events.>") as events,
        connect(relay.url("CP7"), subprotocols=["ocpp1.6"]) as first,  # type: ignore[list-item]
    ):
        await csms.wait_connection("CP7")
        async with connect(relay.url("CP7"), subprotocols=["ocpp1.6"]) as second:  # type: ignore[list-item]
            with pytest.raises(ConnectionClosed):
                await first.recv()
            await second.send('[2,"1","Heartbeat",{}]')
            assert json.loads(await second.recv()) == [3, "1", {}]
            replaced = await events.wait_for(lambda m: m.subject.endswith(".replaced"))
            by = event_body(replaced)["by"]
            await events.wait_for(
                lambda m: m.subject.endswith(".connected") and event_body(m)["sessionId"] == by
            )
    assert event_body(replaced)["chargePointId"] == "CP7"
    kinds = [m.subject.rsplit(".", 1)[1] for m in events.messages]
    # The new session's `connected` waits for NATS to confirm its inject subscription:
    # the old one's `disconnected` may come before or after it.
    assert kinds[:2] == ["connected", "replaced"]
    assert event_body(events.messages[0])["sessionId"] != by


async def test_a_dropped_csms_is_reconnected_while_the_charger_stays(
    settings: Settings, nc: Client
) -> None:
    """The CSMS crashes and comes back on the same port; the charger's socket never closed."""
    csms = await RawCsms().start()
    async with (
        relay_running(upstream_to(settings, csms)) as relay,
        watching(nc, "oye.events.>") as events,
        connect(relay.url("CP8"), subprotocols=["ocpp1.6"]) as charger,  # type: ignore[list-item]
    ):
        await csms.wait_connection("CP8")
        await csms.stop()
        await events.wait_for(lambda m: m.subject.endswith(".upstream_down"))
        await csms.start()
        await events.wait_for(lambda m: m.subject.endswith(".upstream_up"))
        again = await csms.wait_connection("CP8", index=1)
        await charger.send('[2,"after","Heartbeat",{}]')
        assert json.loads(await charger.recv()) == [3, "after", {}]
        assert (await csms.wait_received(again, 1))[0] == '[2,"after","Heartbeat",{}]'
    await csms.stop()


async def test_a_csms_that_closes_deliberately_closes_the_charger_with_its_code(
    settings: Settings,
) -> None:
    """A CSMS close frame (1008) is mirrored to the charger."""
    async with (
        RawCsms() as csms,
        relay_running(upstream_to(settings, csms)) as relay,
        connect(relay.url("CP9"), subprotocols=["ocpp1.6"]) as charger,  # type: ignore[list-item]
    ):
        connected = await csms.wait_connection("CP9")
        await connected.connection.close(1008, "go away")
        with pytest.raises(ConnectionClosed) as closed:
            await charger.recv()
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "go away")


async def test_a_charger_that_closes_closes_the_csms_leg_with_its_code(settings: Settings) -> None:
    """The charger's close code (4001) is mirrored upstream."""
    async with RawCsms() as csms, relay_running(upstream_to(settings, csms)) as relay:
        async with connect(relay.url("CP10"), subprotocols=["ocpp1.6"]) as charger:  # type: ignore[list-item]
            connected = await csms.wait_connection("CP10")
            await charger.close(4001, "bye")
        async with asyncio.timeout(10):
            await connected.connection.wait_closed()
    assert connected.connection.close_code == 4001


async def test_an_unreachable_csms_does_not_keep_the_charger_out(
    settings: Settings, nc: Client
) -> None:
    """Nothing listens upstream: the charger is accepted and the CSMS joins when it starts."""
    csms = RawCsms()
    await csms.start()
    port = csms.port
    await csms.stop()
    async with (
        relay_running(upstream_to(settings, csms)) as relay,
        watching(nc, "oye.events.>") as events,
        connect(relay.url("CP11"), subprotocols=["ocpp2.0.1"]) as charger,  # type: ignore[list-item]
    ):
        assert charger.subprotocol == "ocpp2.0.1"
        connected_event = await events.wait_for(lambda m: m.subject.endswith(".connected"))
        assert event_body(connected_event)["upstream"] == "down"
        late = RawCsms(port=port)
        await late.start()
        await events.wait_for(lambda m: m.subject.endswith(".upstream_up"))
        await charger.send('[2,"x","Heartbeat",{}]')
        assert json.loads(await charger.recv()) == [3, "x", {}]
        await late.stop()


async def test_a_charger_that_connects_to_another_relay_leaves_the_first_one(
    settings: Settings, nc: Client
) -> None:
    """Two relays on one NATS: the newest connection wins, the old socket is closed and a
    'replaced' event names the relay that took over."""
    other = settings.model_copy(update={"ocpp_port": free_port(), "relay_id": "relay-other"})
    async with (
        RawCsms() as csms,
        relay_running(upstream_to(settings, csms)) as first_relay,
        relay_running(upstream_to(other, csms)) as second_relay,
        watching(nc, "oye.events.>") as events,
        connect(first_relay.url("CP-M"), subprotocols=["ocpp1.6"]) as first,  # type: ignore[list-item]
    ):
        await events.wait_for(lambda m: m.subject.endswith(".connected"))
        async with connect(second_relay.url("CP-M"), subprotocols=["ocpp1.6"]) as second:  # type: ignore[list-item]
            with pytest.raises(ConnectionClosed):
                await first.recv()
            replaced = await events.wait_for(lambda m: m.subject.endswith(".replaced"))
            await second.send('[2,"1","Heartbeat",{}]')
            assert json.loads(await second.recv()) == [3, "1", {}]
    body = event_body(replaced)
    assert (body["relay"], body["byRelay"]) == (settings.relay_id, "relay-other")


async def test_frames_behind_a_refused_call_keep_their_order(settings: Settings) -> None:
    """A CALL over the rate is answered by the relay (it waits for that send); the frames
    after it wait behind it, and reach the CSMS in the charger's order."""
    slow = settings.model_copy(update={"charger_call_rate": 0.5, "flood_disconnect_after": 60.0})
    sent: list[str | bytes] = [
        '[2,"a","Heartbeat",{}]',  # the one token of the burst
        '[2,"b","Heartbeat",{}]',  # refused
        '[3,"r1",{}]',  # answers are never limited
        b'[3,"r2",{}]',
        '[2,"c","Heartbeat",{}]',  # refused
        '[3,"r3",{}]',
    ]
    async with (
        RawCsms() as csms,
        relay_running(upstream_to(slow, csms)) as relay,
        connect(relay.url("CP-ORDER"), subprotocols=["ocpp1.6"]) as charger,  # type: ignore[list-item]
    ):
        for message in sent:
            await charger.send(message)
        answers = [json.loads(await charger.recv()) for _ in range(3)]
        assert {answer[1] for answer in answers} == {"a", "b", "c"}
        # Refused: b surely; c too, unless the machine took 2 s to send it (a new token).
        refused = {answer[1] for answer in answers if answer[0] == 4}
        assert "a" not in refused
        assert "b" in refused
        forwarded = [m for m in sent if json.loads(m)[1] not in refused]
        connected = await csms.wait_connection("CP-ORDER")
        received = await csms.wait_received(connected, len(forwarded))
    assert received == forwarded


def alive(kind: type) -> list[object]:
    gc.collect()  # websockets' protocol and its parser's generator refer to each other
    # type(), not isinstance(): a weak proxy to one would pass for one.
    return [thing for thing in gc.get_objects() if issubclass(type(thing), kind)]


async def test_both_legs_are_the_relays_own_and_websockets_connections_are_let_go(
    settings: Settings,
) -> None:
    """What keeps a charger's memory down (docs/PERFORMANCE.md): once open, neither
    leg is a websockets connection any more, nor does a handler task wait for it;
    with or without permessage-deflate."""
    async with (
        RawCsms() as csms,
        relay_running(upstream_to(settings, csms)) as relay,
        connect(relay.url("CP-plain"), subprotocols=["ocpp1.6"], compression=None) as plain,  # type: ignore[list-item]
        connect(relay.url("CP-deflate"), subprotocols=["ocpp1.6"]) as deflate,  # type: ignore[list-item]
    ):
        for charger, cp in ((plain, "CP-plain"), (deflate, "CP-deflate")):
            connected = await csms.wait_connection(cp)
            await charger.send('[2,"m1","Heartbeat",{}]')
            assert json.loads(await charger.recv())[:2] == [3, "m1"]
            await connected.connection.send('[2,"c1","Reset",{"type":"Soft"}]')
            assert await charger.recv() == '[2,"c1","Reset",{"type":"Soft"}]'
            await charger.send('[3,"c1",{"status":"Accepted"}]')
            assert (await csms.wait_received(connected, 2))[1] == '[3,"c1",{"status":"Accepted"}]'
        # Both chargers' legs and their upstreams (which compress: websockets' default).
        assert len(alive(WebSocketLeg)) == 4
        # websockets' connections: the chargers' two and the CSMS's two, none of the relay's.
        assert len(alive(Connection)) == 4


def relay_tasks() -> list[asyncio.Task[object]]:
    """Tasks running the relay's code (a coroutine of oye_relay anywhere in its chain)."""
    found = []
    for task in asyncio.all_tasks():
        awaited: object = task.get_coro()
        while awaited is not None:
            code = getattr(awaited, "cr_code", None) or getattr(awaited, "gi_code", None)
            if code is not None and "/oye_relay/" in code.co_filename:
                found.append(task)
                break
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return found


async def test_no_task_waits_for_a_connected_charger(settings: Settings) -> None:
    """A charger's session runs on its legs' callbacks: connected chargers add no task
    (a task and its coroutines were 1-2 KiB per charger), and one that leaves is
    wound up all the same."""
    async with RawCsms() as csms, relay_running(upstream_to(settings, csms)) as relay:

        async def charger_that_called(cp: str) -> ClientConnection:
            """Connected, and its first CALL answered: the relay's tasks for a new
            connection (the stored limit's re-apply waits for a first CALL) are done."""
            charger = await connect(relay.url(cp), subprotocols=["ocpp1.6"])  # type: ignore[list-item]
            await charger.send('[2,"h1","Heartbeat",{}]')
            assert json.loads(await charger.recv())[:2] == [3, "h1"]
            connected = await csms.wait_connection(cp)
            await connected.connection.send('[2,"c1","Reset",{"type":"Soft"}]')
            assert await charger.recv() == '[2,"c1","Reset",{"type":"Soft"}]'
            return charger

        # The relay-wide tasks (NATS, the fleet's KV writer) all run once one has come.
        first = await charger_that_called("CP-T0")
        baseline = len(relay_tasks())
        chargers = [first] + [await charger_that_called(f"CP-T{i}") for i in range(1, 6)]
        await eventually(lambda: len(relay_tasks()) <= baseline)
        for index, charger in enumerate(chargers):
            connected = await csms.wait_connection(f"CP-T{index}")
            await charger.close(4001, "bye")
            async with asyncio.timeout(10):
                await connected.connection.wait_closed()
            assert connected.connection.close_code == 4001


async def test_a_session_that_fails_to_start_closes_its_charger_and_is_wound_up(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug of ours in a session's start: that charger is closed with 1011, its CSMS
    leg closed, its place freed (one connection per address here), and the relay goes on."""
    start = ChargerSession.start

    def failing(session: ChargerSession) -> None:
        if session.charge_point_id == "CP-BROKEN":
            raise RuntimeError("a bug")
        start(session)

    monkeypatch.setattr(ChargerSession, "start", failing)
    one_per_address = settings.model_copy(update={"max_connections_per_address": 1})
    async with RawCsms() as csms, relay_running(upstream_to(one_per_address, csms)) as relay:
        async with connect(relay.url("CP-BROKEN"), subprotocols=["ocpp1.6"]) as broken:  # type: ignore[list-item]
            with pytest.raises(ConnectionClosed) as closed:
                async with asyncio.timeout(10):
                    await broken.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1011
        upstream = await csms.wait_connection("CP-BROKEN")
        async with asyncio.timeout(10):
            await upstream.connection.wait_closed()
        async with connect(relay.url("CP-OK"), subprotocols=["ocpp1.6"]) as charger:  # type: ignore[list-item]
            await charger.send('[2,"h1","Heartbeat",{}]')
            assert json.loads(await charger.recv())[:2] == [3, "h1"]


async def test_a_charger_that_leaves_during_the_csms_handshake_leaves_nothing_behind(
    settings: Settings,
) -> None:
    """The relay gives up at once the CSMS connection it was opening for it (not when the
    CSMS's time is up), and the charger's address may connect again (its count is given
    back)."""
    reached: asyncio.Queue[None] = asyncio.Queue()
    dropped: asyncio.Queue[None] = asyncio.Queue()

    async def silent_csms(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        reached.put_nowait(None)
        with contextlib.suppress(ConnectionError):
            await reader.read()  # never answers; until the relay lets go
        dropped.put_nowait(None)
        writer.close()

    async def charger_leaves_while_the_csms_is_silent() -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", configured.ocpp_port)
        key = base64.b64encode(b"0123456789abcdef").decode()
        writer.write(
            f"GET /ocpp/CP-LEAVES HTTP/1.1\r\nHost: relay\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n".encode()
        )
        await reached.get()
        writer.close()
        await dropped.get()

    csms = await asyncio.start_server(silent_csms, "127.0.0.1", 0)
    port = csms.sockets[0].getsockname()[1]
    configured = settings.model_copy(
        update={
            "upstream_url": f"ws://127.0.0.1:{port}/ocpp",
            "max_connections_per_address": 1,
            "upstream_connect_timeout": 60.0,  # far longer than this test waits
        }
    )
    async with csms, relay_running(configured):
        async with asyncio.timeout(10):
            await charger_leaves_while_the_csms_is_silent()
            # Admitted again (the CSMS hears of it), not refused 429 as a second connection.
            await charger_leaves_while_the_csms_is_silent()
