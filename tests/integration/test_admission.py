"""Who may connect as a charger, and what one misbehaving peer may cost the others:
credentials checked by the proxy, pending approval, throttling, floods, huge frames,
handshakes that never finish — over real sockets, with another charger watching."""

from __future__ import annotations

import asyncio
import base64
import contextlib
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
    start = time.perf_counter()
    await charger.send(json.dumps([2, message_id, "Heartbeat", {}]))
    while json.loads(await charger.recv())[1] != message_id:
        pass
    return time.perf_counter() - start


async def test_local_mode_refuses_a_wrong_or_missing_password_and_admits_the_right_one(
    settings: Settings, nc: Client
) -> None:
    local = settings.model_copy(update={"charger_auth": "local"})
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
        await charger.close()


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


# -- one peer misbehaving, another charger watching -----------------------------------------


async def baseline(charger: ClientConnection, prefix: str) -> float:
    return statistics.median([await round_trip(charger, f"{prefix}{n}") for n in range(20)])


async def test_a_flooding_charger_gets_callerrors_then_is_cut_off_and_others_stay_fast(
    settings: Settings,
) -> None:
    flood_limits = settings.model_copy(
        update={"charger_call_rate": 20.0, "flood_disconnect_after": 1.0}
    )
    async with (
        relay_running(flood_limits) as relay,
        await open_charger(relay, "CP-CALM") as calm,
        await open_charger(relay, "CP-FLOOD") as flood,
    ):
        before = await baseline(calm, "b")
        answers: dict[str, int] = {"result": 0, "error": 0}

        async def read_flood() -> int | None:
            try:
                while True:
                    answer = json.loads(await flood.recv())
                    answers["result" if answer[0] == 3 else "error"] += 1
                    if answer[0] == 4:
                        assert answer[2] == "GenericError"
                        assert "rate limit" in answer[3]
            except ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd else None

        reader = asyncio.create_task(read_flood())

        async def send_flood() -> None:
            n = 0
            with contextlib.suppress(ConnectionClosed):  # ends when the relay cuts it off
                while True:  # ~10,000 CALLs a second, until the relay has had enough
                    for _ in range(100):
                        await flood.send(f'[2,"f{n}","Heartbeat",{{}}]')
                        n += 1
                    await asyncio.sleep(0.01)

        sender = asyncio.create_task(send_flood())
        during = [await round_trip(calm, f"d{n}") for n in range(20)]
        code = await asyncio.wait_for(reader, 20)
        await sender
        assert code == 1008
        assert answers["error"] > answers["result"] > 0
        assert statistics.median(during) < max(20 * before, 0.25)
        assert await round_trip(calm, "after") < 1.0


async def test_a_frame_over_the_size_limit_closes_that_charger_with_1009_only(
    settings: Settings,
) -> None:
    async with (
        relay_running(settings) as relay,
        await open_charger(relay, "CP-OK") as calm,
        await open_charger(relay, "CP-BIG") as big,
    ):
        before = await baseline(calm, "b")
        huge = '[2,"big","DataTransfer",{"vendorId":"x","data":"' + "x" * 10_000_000 + '"}]'
        with contextlib.suppress(ConnectionClosed):  # closed while it was still sending
            await big.send(huge)
        with pytest.raises(ConnectionClosed):
            await big.recv()
        assert big.close_code == 1009
        assert await round_trip(calm, "after") < max(20 * before, 0.25)


async def test_a_handshake_that_never_finishes_is_closed_and_others_carry_on(
    settings: Settings,
) -> None:
    quick = settings.model_copy(update={"handshake_timeout": 0.5, "upstream_connect_timeout": 0.5})
    async with relay_running(quick) as relay, await open_charger(relay, "CP-FINE") as calm:
        before = await baseline(calm, "b")
        reader, writer = await asyncio.open_connection("127.0.0.1", quick.ocpp_port)
        writer.write(b"GET /ocpp/CP-SLOW HTTP/1.1\r\nHost: x\r\n")  # ... and never the rest
        async with asyncio.timeout(10):
            rest = await reader.read()  # the relay closes the socket: EOF
        assert b"101" not in rest
        writer.close()
        assert await round_trip(calm, "after") < max(20 * before, 0.25)


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


async def test_500_connections_from_one_address_get_429_beyond_the_limit(
    settings: Settings,
) -> None:
    """The documented default (100 per address): the rest get 429 at once, and a charger
    already connected keeps its round trips."""
    async with relay_running(settings) as relay, await open_charger(relay, "CP-WATCH") as calm:
        before = await baseline(calm, "b")

        async def attempt(n: int) -> ClientConnection | int:
            try:
                return await open_charger(relay, f"CP-MANY-{n}")
            except InvalidStatus as refused:
                return refused.response.status_code

        outcomes = await asyncio.gather(*(attempt(n) for n in range(500)))
        during = [await round_trip(calm, f"d{n}") for n in range(10)]
        admitted = [o for o in outcomes if not isinstance(o, int)]
        refused = [o for o in outcomes if isinstance(o, int)]
        assert len(admitted) == settings.max_connections_per_address - 1  # CP-WATCH is one
        assert set(refused) == {429}
        assert statistics.median(during) < max(20 * before, 0.25)
        for charger in admitted:
            await charger.close()
