"""Who may connect as a charger, and what one misbehaving peer may cost the others:
credentials checked by the proxy, pending approval, throttling, floods, huge frames,
handshakes that never finish — over real sockets, with another charger watching."""

from __future__ import annotations

import asyncio
import base64
import json
import statistics
import time
from typing import Any

import pytest
from nats.aio.client import Client
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from oye_relay.pending import APPROVED_CLOSE_CODE
from oye_shared.charger_auth import CHARGER_AUTH_BUCKET, ChargerCredential, charger_hasher
from oye_shared.kv import bucket_config, open_bucket
from oye_shared.settings import Settings
from oye_shared.subjects import kv_key
from tests.support.hostile_peer import HostilePeer
from tests.support.raw_csms import RawCsms
from tests.support.relay import RunningRelay, event_body, eventually, relay_running, watching

pytestmark = pytest.mark.integration

PASSWORD = "a-charger-password-0001"


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def store_credential(nc: Client, credential: ChargerCredential) -> None:
    kv = await open_bucket(nc.jetstream(), bucket_config("oye", CHARGER_AUTH_BUCKET))
    await kv.put(
        kv_key(credential.charge_point_id), credential.model_dump_json(by_alias=True).encode()
    )


async def approved_with_password(nc: Client, cp: str, password: str = PASSWORD) -> None:
    await store_credential(
        nc,
        ChargerCredential(
            charge_point_id=cp, approved=True, password_hash=charger_hasher().hash(password)
        ),
    )


async def open_charger(
    relay: RunningRelay, cp: str, headers: dict[str, str] | None = None
) -> ClientConnection:
    return await connect(
        relay.url(cp),
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        additional_headers=headers,
    )


async def refused_with(relay: RunningRelay, cp: str, headers: dict[str, str] | None) -> Any:
    with pytest.raises(InvalidStatus) as refused:
        await open_charger(relay, cp, headers)
    return refused.value.response


async def round_trip(charger: ClientConnection, message_id: str) -> float:
    """Seconds until a Heartbeat is answered (answered, not refused by the rate limit)."""
    start = time.perf_counter()
    await charger.send(json.dumps([2, message_id, "Heartbeat", {}]))
    while (answer := json.loads(await charger.recv()))[1] != message_id:
        pass
    assert answer[0] == 3, answer
    return time.perf_counter() - start


@pytest.mark.parametrize("mode", ["local", "auto"])  # auto: local when standalone
async def test_local_mode_refuses_a_wrong_or_missing_password_and_admits_the_right_one(
    settings: Settings, nc: Client, mode: str
) -> None:
    local = settings.model_copy(update={"charger_auth": mode})
    async with relay_running(local) as relay, watching(nc, "oye.events.>") as events:
        await approved_with_password(nc, "CP-A1")

        async def password_required() -> bool:
            try:
                charger = await open_charger(relay, "CP-A1")
            except InvalidStatus as refused:
                return refused.response.status_code == 401
            await charger.close()
            return False

        await eventually(password_required)  # the relay has the credential now
        missing = await refused_with(relay, "CP-A1", None)
        assert missing.headers["WWW-Authenticate"].startswith("Basic")
        wrong = await refused_with(relay, "CP-A1", basic("CP-A1", "not-the-password-123"))
        assert wrong.status_code == 401
        other_user = await refused_with(relay, "CP-A1", basic("CP-A2", PASSWORD))
        assert other_user.status_code == 401
        refusal = await events.wait_for(lambda m: m.subject.endswith(".admission_refused"))
        assert event_body(refusal)["status"] == 401
        assert PASSWORD not in refusal.data.decode()

        async with await open_charger(relay, "CP-A1", basic("CP-A1", PASSWORD)) as charger:
            assert await round_trip(charger, "ok") > 0


async def test_a_takeover_with_wrong_credentials_leaves_the_charger_connected(
    settings: Settings, nc: Client
) -> None:
    """A wrong password is refused (401, an event) and the charger keeps its connection;
    only the right password replaces it."""
    local = settings.model_copy(update={"charger_auth": "local"})
    async with relay_running(local) as relay, watching(nc, "oye.events.>") as events:
        await approved_with_password(nc, "CP-A3")

        async def admitted() -> ClientConnection | None:
            try:
                return await open_charger(relay, "CP-A3", basic("CP-A3", PASSWORD))
            except InvalidStatus:
                return None

        charger = await eventually(admitted)
        response = await refused_with(relay, "CP-A3", basic("CP-A3", "an-impostor-password"))
        assert response.status_code == 401
        await events.wait_for(lambda m: m.subject == "oye.events.CP-A3.admission_refused")
        assert await round_trip(charger, "still-here") > 0  # never disturbed
        assert not any(m.subject.endswith(".replaced") for m in events.messages)
        # With the right password, the second connection takes over.
        async with await open_charger(relay, "CP-A3", basic("CP-A3", PASSWORD)) as second:
            with pytest.raises(ConnectionClosed):
                await charger.recv()
            await events.wait_for(lambda m: m.subject == "oye.events.CP-A3.replaced")
            assert await round_trip(second, "took-over") > 0


async def test_an_unknown_charger_is_pending_until_the_owner_approves_it(
    settings: Settings, nc: Client
) -> None:
    pending = settings.model_copy(update={"unknown_chargers": "pending"})
    async with (
        relay_running(pending) as relay,
        watching(nc, "oye.>") as bus,
        await open_charger(relay, "CP-NEW", basic("CP-NEW", PASSWORD)) as charger,
    ):
        await charger.send(
            '[2,"b1","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]'
        )
        answer = json.loads(await charger.recv())
        assert answer[2]["status"] == "Pending"
        await charger.send('[2,"s1","StatusNotification",{}]')
        assert json.loads(await charger.recv())[2] == "SecurityError"
        await bus.wait_for(lambda m: m.subject == "oye.events.CP-NEW.pending")

        kv = await open_bucket(nc.jetstream(), bucket_config("oye", CHARGER_AUTH_BUCKET))
        entry = await kv.get(kv_key("CP-NEW"))
        recorded = ChargerCredential.model_validate_json(entry.value or b"")
        assert not recorded.approved
        assert recorded.pending_password_hash is not None  # hashed, never the password
        assert PASSWORD not in (entry.value or b"").decode()

        approved = recorded.model_copy(
            update={"approved": True, "password_hash": recorded.pending_password_hash}
        )
        await kv.put(kv_key("CP-NEW"), approved.model_dump_json(by_alias=True).encode())
        with pytest.raises(ConnectionClosed) as closed:
            await charger.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == APPROVED_CLOSE_CODE

    async with (
        relay_running(pending) as relay,
        await open_charger(relay, "CP-NEW", basic("CP-NEW", PASSWORD)) as again,
    ):
        await again.send(
            '[2,"b2","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]'
        )
        assert json.loads(await again.recv())[2]["status"] == "Accepted"


async def test_reject_mode_admits_only_approved_chargers(settings: Settings, nc: Client) -> None:
    strict = settings.model_copy(update={"unknown_chargers": "reject"})
    async with relay_running(strict) as relay:
        assert (await refused_with(relay, "CP-STRANGER", None)).status_code == 403
        await store_credential(nc, ChargerCredential(charge_point_id="CP-KNOWN", approved=True))

        async def admitted() -> bool:
            try:
                charger = await open_charger(relay, "CP-KNOWN")
            except InvalidStatus:
                return False
            await charger.close()
            return True

        await eventually(admitted)


async def test_failed_admissions_from_one_address_are_throttled_with_retry_after(
    settings: Settings, nc: Client
) -> None:
    local = settings.model_copy(update={"charger_auth": "local"})
    async with relay_running(local) as relay:
        await approved_with_password(nc, "CP-T")

        async def refused() -> bool:
            try:
                charger = await open_charger(relay, "CP-T")
            except InvalidStatus as refusal:
                return refusal.response.status_code == 401
            await charger.close()
            return False

        await eventually(refused)
        statuses = []
        for _ in range(12):
            response = await refused_with(relay, "CP-T", basic("CP-T", "guess-number-00001"))
            statuses.append(response.status_code)
        assert statuses[-1] == 429
        assert int(response.headers["Retry-After"]) > 0
        # Even the right password waits now: the address is throttled, not the charger.
        assert (await refused_with(relay, "CP-T", basic("CP-T", PASSWORD))).status_code == 429


async def test_too_many_connections_from_one_address_get_429(settings: Settings) -> None:
    limited = settings.model_copy(update={"max_connections_per_address": 3})
    async with relay_running(limited) as relay:
        chargers = [await open_charger(relay, f"CP-C{n}") for n in range(3)]
        assert (await refused_with(relay, "CP-C3", None)).status_code == 429
        await chargers[0].close()

        async def admitted_again() -> bool:
            try:
                charger = await open_charger(relay, "CP-C3")
            except InvalidStatus:
                return False
            chargers.append(charger)
            return True

        await eventually(admitted_again)  # a slot is free once one leaves
        for charger in chargers:
            await charger.close()


async def test_local_mode_keeps_the_password_from_the_csms_and_both_passes_it_on(
    settings: Settings, nc: Client
) -> None:
    for mode, forwarded in (("local", False), ("both", True)):
        async with RawCsms() as csms:
            configured = settings.model_copy(
                update={"charger_auth": mode, "upstream_url": csms.url}
            )
            async with relay_running(configured) as relay:
                cp = f"CP-{mode}"
                await approved_with_password(nc, cp)

                async def admitted(cp: str = cp) -> ClientConnection | None:
                    try:
                        return await open_charger(relay, cp, basic(cp, PASSWORD))
                    except InvalidStatus:
                        return None

                charger = await eventually(admitted)
                seen = await csms.wait_connection(cp)
                assert ("Authorization" in seen.headers) is forwarded
                await charger.close()


# -- one peer misbehaving (in a process of its own), another charger watching -------------

#: Round trips "stay normal": their median within this factor of the median measured before
#: in the same test (with a floor of 50 ms: on a busy two-core machine 20 x 0.2 ms is noise).
NORMAL_FACTOR = 20
NORMAL_FLOOR = 0.05


async def baseline(charger: ClientConnection, prefix: str) -> float:
    return statistics.median([await round_trip(charger, f"{prefix}{n}") for n in range(20)])


async def round_trips_while(
    peer: HostilePeer, charger: ClientConnection, *, every: float = 0.0
) -> list[float]:
    """The charger's round trips for as long as the peer misbehaves: back to back, or one
    every ``every`` seconds (to stay within its own CALL rate)."""
    loop = asyncio.get_running_loop()
    during: list[float] = []
    while peer.running():
        began = loop.time()
        during.append(await round_trip(charger, f"during-{len(during)}"))
        await asyncio.sleep(max(0.0, began + every - loop.time()))  # pacing, not waiting
    return during


def unlimited(settings: Settings) -> Settings:
    """The watching charger's back-to-back round trips must not meet the CALL rate limit
    (not what these tests are about)."""
    return settings.model_copy(update={"charger_call_rate": 100_000.0})


def assert_normal(during: list[float], before: float) -> None:
    assert during, "no round trip overlapped the misbehaviour"
    bound = max(NORMAL_FACTOR * before, NORMAL_FLOOR)
    assert statistics.median(during) < bound, (statistics.median(during), before, len(during))


async def test_10000_calls_a_second_get_callerrors_then_1008_while_another_charger_stays_fast(
    settings: Settings, nc: Client
) -> None:
    """A charger sending 10,000 CALLs a second: the burst and the rate pass, every other
    CALL gets a GenericError; once the flood has lasted OYE_FLOOD_DISCONNECT_AFTER the relay
    closes it with 1008, cleanly (its disconnected event says 1008, not 1006 after a close
    timeout). Another charger's round trips meanwhile stay normal."""
    rate = 20.0
    flood_limits = settings.model_copy(
        update={"charger_call_rate": rate, "flood_disconnect_after": 2.0}
    )
    async with (
        relay_running(flood_limits) as relay,
        watching(nc, "oye.events.CP-FLOOD.>") as events,
        await open_charger(relay, "CP-CALM") as calm,
    ):
        before = await baseline(calm, "b")
        async with HostilePeer("flood", relay.url("CP-FLOOD"), "10000") as peer:
            during = await round_trips_while(peer, calm, every=2 / rate)
            report = await peer.finished()
        disconnected = await events.wait_for(lambda m: m.subject.endswith(".disconnected"))
        assert await round_trip(calm, "after") < max(NORMAL_FACTOR * before, NORMAL_FLOOR)
    assert report["code"] == 1008
    assert event_body(disconnected)["code"] == 1008
    assert set(report["errors"]) == {"GenericError: rate limit: at most 20 CALLs a second"}
    # The burst (twice the rate) and then the rate itself, and not one CALL more.
    assert 2 * rate <= report["results"] <= 2 * rate + rate * report["seconds"] + 1
    assert sum(report["errors"].values()) > report["results"]
    assert_normal(during, before)


async def test_a_charger_over_its_rate_for_a_moment_gets_callerrors_and_stays_connected(
    settings: Settings,
) -> None:
    """100 CALLs at once, rate 20 (burst 40): 40 answered, 60 refused, and the charger is
    not disconnected: a flood must last OYE_FLOOD_DISCONNECT_AFTER (default 10 s)."""
    rate = settings.charger_call_rate
    async with relay_running(settings) as relay, await open_charger(relay, "CP-BURST") as burst:
        began = time.perf_counter()
        for n in range(100):
            await burst.send(f'[2,"c{n}","Heartbeat",{{}}]')
        answers = [json.loads(await burst.recv()) for _ in range(100)]
        seconds = time.perf_counter() - began
        await (await burst.ping())  # answered: still connected
    results = [answer for answer in answers if answer[0] == 3]
    errors = [answer for answer in answers if answer[0] == 4]
    # The burst, plus what the rate refilled meanwhile; everything else refused.
    assert 2 * rate <= len(results) <= 2 * rate + rate * seconds + 1
    assert len(results) + len(errors) == 100
    assert {error[2] for error in errors} == {"GenericError"}
    assert burst.close_code == 1000  # closed by us, at the end


@pytest.mark.parametrize("fragments", [1, 10])
async def test_a_10_mb_message_closes_that_charger_with_1009_while_another_stays_fast(
    settings: Settings, fragments: int
) -> None:
    """Over the default OYE_MAX_FRAME_BYTES (8 MiB), as one frame or as ten 1 MB fragments
    that the relay buffers until they pass the limit: 1009 for that charger only."""
    async with (
        relay_running(unlimited(settings)) as relay,
        await open_charger(relay, "CP-OK") as calm,
    ):
        before = await baseline(calm, "b")
        url = relay.url("CP-BIG")
        async with HostilePeer("huge-message", url, "10000000", str(fragments)) as peer:
            during = await round_trips_while(peer, calm)
            report = await peer.finished()
        during.append(await round_trip(calm, "after"))  # one frame is refused at once
    assert report["code"] == 1009
    assert_normal(during, before)


async def test_handshakes_that_never_finish_are_dropped_while_another_charger_stays_fast(
    settings: Settings,
) -> None:
    """50 handshakes that send half a request: each connection is closed without an answer
    once OYE_HANDSHAKE_TIMEOUT (+ OYE_UPSTREAM_CONNECT_TIMEOUT) has passed."""
    quick = unlimited(settings).model_copy(
        update={"handshake_timeout": 1.0, "upstream_connect_timeout": 0.5}
    )
    async with relay_running(quick) as relay, await open_charger(relay, "CP-FINE") as calm:
        before = await baseline(calm, "b")
        address = ("127.0.0.1", str(quick.ocpp_port), "/ocpp/CP-SLOW", "50")
        async with HostilePeer("stalled-handshakes", *address) as peer:
            during = await round_trips_while(peer, calm)
            report = await peer.finished()
    assert report["answers"] == {"": 50}  # closed, not one byte sent back
    assert_normal(during, before)


async def test_500_connections_from_one_address_get_429_beyond_the_limit_while_another_stays_fast(
    settings: Settings,
) -> None:
    """The documented default (100 per address, CP-WATCH is one of them): 99 admitted, the
    other 401 get 429 at once, and CP-WATCH's round trips stay normal meanwhile."""
    async with (
        relay_running(unlimited(settings)) as relay,
        await open_charger(relay, "CP-WATCH") as calm,
    ):
        before = await baseline(calm, "b")
        async with HostilePeer("connections", relay.url("CP-MANY"), "500") as peer:
            during = await round_trips_while(peer, calm)
            report = await peer.finished()
    assert report["failures"] == []
    assert report["admitted"] == settings.max_connections_per_address - 1
    assert report["statuses"] == {"429": 500 - report["admitted"]}
    assert_normal(during, before)


async def test_none_mode_admits_anyone_even_where_a_password_is_set(
    settings: Settings, nc: Client, caplog: pytest.LogCaptureFixture
) -> None:
    lab = settings.model_copy(update={"charger_auth": "none", "unknown_chargers": "reject"})
    await approved_with_password(nc, "CP-LAB")
    async with relay_running(lab) as relay:
        async with await open_charger(relay, "CP-LAB", basic("CP-LAB", "anything-at-all-123")):
            pass
        async with await open_charger(relay, "CP-WHOEVER"):
            pass
    assert any("OYE_CHARGER_AUTH=none" in r.getMessage() for r in caplog.records)


async def test_masked_id_tags_on_nats_while_the_csms_gets_them_as_sent(
    settings: Settings, nc: Client
) -> None:
    async with RawCsms() as csms:
        masking = settings.model_copy(update={"mask_id_tags": True, "upstream_url": csms.url})
        async with (
            relay_running(masking) as relay,
            watching(nc, "oye.frames.>") as frames,
            await open_charger(relay, "CP-M") as charger,
        ):
            await charger.send('[2,"a1","Authorize",{"idTag":"04A2B3C4D5"}]')
            connected = await csms.wait_connection("CP-M")
            assert await csms.wait_received(connected, 1) == [
                '[2,"a1","Authorize",{"idTag":"04A2B3C4D5"}]'
            ]
            published = await frames.wait_for(lambda m: m.subject.endswith(".UPSTREAM"))
            assert json.loads(published.data)[3] == {"idTag": "****D5"}
            assert b"04A2B3C4D5" not in published.data


async def test_a_password_set_over_ocpp_is_masked_on_nats_while_the_charger_gets_it(
    settings: Settings, nc: Client
) -> None:
    """Without OYE_MASK_ID_TAGS: the CSMS's new AuthorizationKey reaches the charger as sent
    and is ``****`` on NATS; id tags are published as they are."""
    new_password = "rotated-by-the-csms-4411"
    change = json.dumps(
        [2, "c1", "ChangeConfiguration", {"key": "AuthorizationKey", "value": new_password}]
    )
    async with RawCsms() as csms:
        forwarding = settings.model_copy(update={"upstream_url": csms.url})
        async with (
            relay_running(forwarding) as relay,
            watching(nc, "oye.frames.>") as frames,
            await open_charger(relay, "CP-K") as charger,
        ):
            connected = await csms.wait_connection("CP-K")
            await connected.connection.send(change)
            assert await charger.recv() == change
            await charger.send('[2,"a1","Authorize",{"idTag":"04A2B3C4D5"}]')
            published = await frames.wait_for(lambda m: m.subject.endswith(".DOWNSTREAM"))
            assert json.loads(published.data)[3] == {"key": "AuthorizationKey", "value": "****"}
            tag = await frames.wait_for(lambda m: m.subject.endswith(".UPSTREAM"))
            assert json.loads(tag.data)[3] == {"idTag": "04A2B3C4D5"}
            assert not any(new_password.encode() in m.data for m in frames.messages)
