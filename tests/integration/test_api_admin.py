"""The inject-api's admin side on a real NATS: auth and users, config, chargers, health."""

from __future__ import annotations

import asyncio
import logging
import stat
from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from oye_api.main import serve
from oye_cli.nats_server import NatsServer
from oye_shared.bus import confirmed
from oye_shared.inject import QUERY, STATE_QUERY
from oye_shared.settings import Settings
from oye_shared.state import ChargerState, ChargerStatus, RelayState, encode_state
from oye_shared.subjects import Subjects, kv_key
from tests.integration.api_support import (
    PASSWORD,
    bucket,
    client,
    running_api,
    running_app,
    with_admin,
)

pytestmark = pytest.mark.integration

NEW_PASSWORD = "a much longer passphrase"


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_api(with_admin(settings)) as http:
        yield http


# --- auth and users -------------------------------------------------------------------


async def test_no_credentials_is_401_with_a_basic_challenge(settings: Settings) -> None:
    """Every /api route asks for HTTP Basic: 401 and WWW-Authenticate."""
    async with running_api(with_admin(settings), auth=None) as http:
        for path in ("/api/chargers", "/api/config", "/api/chargers/CP1"):
            response = await http.get(path)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"].startswith("Basic ")


async def test_admin_is_created_with_the_configured_password(api: httpx.AsyncClient) -> None:
    """OYE_ADMIN_PASSWORD is admin's first password."""
    assert (await api.get("/api/config")).status_code == 200


async def test_wrong_password_and_unknown_user_are_401(settings: Settings) -> None:
    """A wrong password and an unknown user are refused alike."""
    async with running_app(with_admin(settings)) as app:
        for auth in (("admin", "wrong password!"), ("nobody", PASSWORD), ("", "")):
            async with client(app, auth=auth) as http:
                assert (await http.get("/api/config")).status_code == 401


async def test_repeated_failures_from_one_address_are_throttled_everywhere(
    settings: Settings,
) -> None:
    """After 5 failures the address gets 429 + Retry-After, even with the right password,
    on every API instance; another address is not affected."""
    attacker = "192.0.2.7"
    async with running_app(with_admin(settings)) as app:
        async with client(app, auth=("admin", "guess guess guess"), address=attacker) as http:
            for _ in range(5):
                assert (await http.get("/api/config")).status_code == 401
        async with client(app, address=attacker) as http:
            throttled = await http.get("/api/config")
        async with client(app, address="192.0.2.8") as http:
            assert (await http.get("/api/config")).status_code == 200
    assert throttled.status_code == 429
    assert 1 <= int(throttled.headers["retry-after"]) <= 60
    async with running_app(with_admin(settings)) as other, client(other, address=attacker) as http:
        assert (await http.get("/api/config")).status_code == 429


async def test_a_successful_login_clears_earlier_failures(settings: Settings) -> None:
    """4 failures, a success, then 4 more failures: still not throttled."""
    async with (
        running_app(with_admin(settings)) as app,
        client(app, auth=("admin", "nope nope nope")) as bad,
        client(app) as good,
    ):
        for _ in range(4):
            assert (await bad.get("/api/config")).status_code == 401
        assert (await good.get("/api/config")).status_code == 200
        for _ in range(4):
            assert (await bad.get("/api/config")).status_code == 401
        assert (await good.get("/api/config")).status_code == 200


async def test_change_password_refuses_short_ones_then_the_new_one_works(
    settings: Settings,
) -> None:
    """Under 12 characters: 422; a wrong currentPassword: 403; then only the new one works."""
    async with running_app(with_admin(settings)) as app:
        async with client(app) as http:
            short = await http.post("/api/change-password", json={"newPassword": "short"})
            wrong = await http.post(
                "/api/change-password",
                json={"currentPassword": "not it at all", "newPassword": NEW_PASSWORD},
            )
            changed = await http.post(
                "/api/change-password",
                json={"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD},
            )
            assert (await http.get("/api/config")).status_code == 401  # old password
        async with client(app, auth=("admin", NEW_PASSWORD)) as http:
            assert (await http.get("/api/config")).status_code == 200
    assert short.status_code == 422
    assert short.json()["detail"][0]["loc"] == ["body", "newPassword"]
    assert wrong.status_code == 403
    assert changed.status_code == 204


async def test_users_survive_an_api_restart(settings: Settings) -> None:
    """A password changed on one instance is the password on the next one (NATS KV)."""
    async with running_api(with_admin(settings)) as http:
        response = await http.post("/api/change-password", json={"newPassword": NEW_PASSWORD})
        assert response.status_code == 204
    async with running_api(with_admin(settings), auth=("admin", NEW_PASSWORD)) as http:
        assert (await http.get("/api/config")).status_code == 200


async def test_a_random_admin_password_is_left_in_a_private_file_never_in_the_log(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Without OYE_ADMIN_PASSWORD the password is random, in a file only its owner can
    read, named by one WARNING; it works, and no log line holds it."""
    unset = with_admin(settings, password=None)
    with caplog.at_level(logging.DEBUG):
        async with running_app(unset):
            pass
        async with running_app(unset) as app:
            path = settings.data_dir / "admin-password"
            password = path.read_text().strip()
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            lines = [r for r in caplog.records if "random password" in r.getMessage()]
            assert len(lines) == 1  # the second start found the user
            assert lines[0].levelno == logging.WARNING
            assert str(path.resolve()) in lines[0].getMessage()
            assert not [r for r in caplog.records if password in r.getMessage()]
            assert list(settings.data_dir.iterdir()) == [path]  # no draft left behind
            async with client(app, auth=("admin", password)) as http:
                assert (await http.get("/api/config")).status_code == 200


# --- config ---------------------------------------------------------------------------


async def test_config_is_seeded_from_the_environment_only_once(settings: Settings) -> None:
    """OYE_UPSTREAM_URL seeds targetCsmsUrl; once stored, the KV value wins."""
    first = with_admin(settings, upstream_url="ws://csms-one:9000/ocpp")
    async with running_api(first) as http:
        assert (await http.get("/api/config")).json() == {
            "targetCsmsUrl": "ws://csms-one:9000/ocpp",
            "csmsForwardingEnabled": True,
            "autoChargeEnabled": False,
            "defaultIdTag": "OYE-AUTO",
            "primaryPolicy": {},
            "secondaryBackends": [],
        }
    second = with_admin(settings, upstream_url="ws://csms-two:9000/ocpp")
    async with running_api(second) as http:
        config = (await http.get("/api/config")).json()
    assert config["targetCsmsUrl"] == "ws://csms-one:9000/ocpp"


async def test_config_updates_merge_and_persist(api: httpx.AsyncClient) -> None:
    """A partial POST changes only its keys; GET shows the merged result."""
    first = await api.post("/api/config", json={"autoChargeEnabled": True})
    second = await api.post(
        "/api/config", json={"targetCsmsUrl": "wss://csms.example.com/ocpp", "defaultIdTag": "ME"}
    )
    assert first.status_code == second.status_code == 200
    expected = {
        "targetCsmsUrl": "wss://csms.example.com/ocpp",
        "csmsForwardingEnabled": True,
        "autoChargeEnabled": True,
        "defaultIdTag": "ME",
        "primaryPolicy": {},
        "secondaryBackends": [],
    }
    assert second.json() == expected
    assert (await api.get("/api/config")).json() == expected
    cleared = await api.post("/api/config", json={"targetCsmsUrl": None})
    assert cleared.json()["targetCsmsUrl"] is None


async def test_bad_config_values_are_422_naming_the_key(api: httpx.AsyncClient) -> None:
    """A non-WebSocket URL, a string for a boolean, an unknown key: 422 at that key."""
    before = (await api.get("/api/config")).json()
    response = await api.post(
        "/api/config",
        json={"targetCsmsUrl": "http://csms", "autoChargeEnabled": "yes", "colour": "red"},
    )
    assert response.status_code == 422
    locations = {tuple(problem["loc"]) for problem in response.json()["detail"]}
    assert locations == {
        ("body", "targetCsmsUrl"),
        ("body", "autoChargeEnabled"),
        ("body", "colour"),
    }
    assert (await api.get("/api/config")).json() == before


# --- chargers and health --------------------------------------------------------------


async def _store_fleet(nc: Client, settings: Settings) -> None:
    """Two chargers claim to be ONLINE, but only relay-a is alive; one is OFFLINE."""
    chargers = await bucket(nc, settings, "chargers")
    relays = await bucket(nc, settings, "relays")
    await relays.put(
        "relay-a",
        RelayState(relay="relay-a", started="t", chargers=1)
        .model_dump_json(by_alias=True)
        .encode(),
    )
    states = [
        ChargerState(
            charge_point_id="RDAM.12 3*",
            status=ChargerStatus.ONLINE,
            relay="relay-a",
            ocpp_version="1.6",
            subprotocol="ocpp1.6",
            boot={"chargePointVendor": "Alfen", "chargePointModel": "Eve"},
            connectors={"1": {"status": "Charging"}},
            transactions={"12345": {"connectorId": 1, "idTag": "TAG"}},
        ),
        ChargerState(charge_point_id="CP-B", status=ChargerStatus.ONLINE, relay="relay-b"),
        ChargerState(charge_point_id="CP-C", status=ChargerStatus.OFFLINE, relay="relay-a"),
    ]
    for state in states:
        await chargers.put(
            kv_key(state.charge_point_id), state.model_dump_json(by_alias=True).encode()
        )


async def test_chargers_are_listed_and_offline_when_their_relay_is_gone(
    api: httpx.AsyncClient, nc: Client, settings: Settings
) -> None:
    """The list comes from KV; ONLINE on an expired relay is reported OFFLINE."""
    await _store_fleet(nc, settings)
    response = await api.get("/api/chargers")
    assert response.status_code == 200
    statuses = {c["chargePointId"]: c["status"] for c in response.json()}
    assert statuses == {"CP-B": "OFFLINE", "CP-C": "OFFLINE", "RDAM.12 3*": "ONLINE"}


async def test_one_charger_by_its_url_encoded_id(
    api: httpx.AsyncClient, nc: Client, settings: Settings
) -> None:
    """GET /api/chargers/{id} shows version, boot, connectors and transactions; 404 else."""
    await _store_fleet(nc, settings)
    found = await api.get(f"/api/chargers/{quote('RDAM.12 3*', safe='')}")
    offline = await api.get("/api/chargers/CP-B")
    missing = await api.get("/api/chargers/NOPE")
    assert found.status_code == 200
    charger = found.json()
    assert charger["ocppVersion"] == "1.6"
    assert charger["boot"]["chargePointVendor"] == "Alfen"
    assert charger["connectors"]["1"]["status"] == "Charging"
    assert charger["transactions"]["12345"]["idTag"] == "TAG"
    assert offline.json()["status"] == "OFFLINE"
    assert missing.status_code == 404


async def test_one_charger_is_what_its_relay_holds_now_with_the_last_boot_from_kv(
    api: httpx.AsyncClient, nc: Client, settings: Settings
) -> None:
    """The relay holding the charger answers the state query: its state wins over the KV
    entry, which still gives the boot of a charger that reconnected without booting; a
    relay that does not know the query (its reply is no state) leaves the KV entry."""
    await _store_fleet(nc, settings)
    subjects = Subjects(settings.subject_prefix)
    live = ChargerState(
        charge_point_id="RDAM.12 3*",
        status=ChargerStatus.ONLINE,
        relay="relay-a",
        ocpp_version="2.0.1",
        subprotocol="ocpp2.0.1",
    )

    async def holder(msg: Msg) -> None:
        assert msg.headers == {QUERY: STATE_QUERY}
        await msg.respond(encode_state(live))

    async def older_relay(msg: Msg) -> None:
        await msg.respond(b'{"outcome":"invalid"}')

    path = f"/api/chargers/{quote('RDAM.12 3*', safe='')}"
    sub = await nc.subscribe(subjects.inject("RDAM.12 3*"), cb=holder)
    await confirmed(nc)
    charger = (await api.get(path)).json()
    await sub.unsubscribe()
    assert charger["ocppVersion"] == "2.0.1"
    assert charger["connectors"] == {}
    assert charger["boot"]["chargePointVendor"] == "Alfen"

    sub = await nc.subscribe(subjects.inject("RDAM.12 3*"), cb=older_relay)
    await confirmed(nc)
    charger = (await api.get(path)).json()
    await sub.unsubscribe()
    assert charger["ocppVersion"] == "1.6"
    assert charger["connectors"]["1"]["status"] == "Charging"


async def test_health_needs_no_auth_and_counts_relays_and_chargers(
    settings: Settings, nc: Client
) -> None:
    """GET /health without credentials: NATS connected, 1 live relay, 1 connected charger."""
    async with running_api(with_admin(settings), auth=None) as http:
        await _store_fleet(nc, settings)
        response = await http.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "nats": "connected",
        "relays": 1,
        "chargers": 1,
        "replayBacklog": 0,
    }


async def test_health_is_503_while_nats_is_down(
    settings: Settings, nats_server: NatsServer
) -> None:
    """With NATS gone, /health answers 503 "disconnected" (no auth needed), and the API
    still shuts down cleanly."""
    async with running_api(with_admin(settings), auth=None) as http:
        assert (await http.get("/health")).status_code == 200
        nats_server.stop()
        async with asyncio.timeout(5):
            # Each request yields; a KV read may fail (503, "degraded") a moment before
            # the client has noticed the closed socket.
            while (response := await http.get("/health")).json()["nats"] != "disconnected":
                pass
    assert response.status_code == 503
    assert response.json() == {
        "status": "degraded",
        "nats": "disconnected",
        "relays": None,
        "chargers": None,
        "replayBacklog": None,
    }


async def test_serve_runs_on_the_configured_port_until_stopped(settings: Settings) -> None:
    """serve() listens on OYE_BIND_HOST:OYE_HTTP_PORT and returns once stop is set."""
    stop, started = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve(with_admin(settings), stop=stop, started=started))
    async with asyncio.timeout(10):
        await started.wait()
        url = f"http://{settings.bind_host}:{settings.http_port}"
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/health")).status_code == 200
            assert (await http.get("/api/config", auth=("admin", PASSWORD))).status_code == 200
            assert (await http.get("/docs")).status_code == 200
        stop.set()
        await task


async def test_openapi_offers_the_guides_scenarios_and_basic_auth(api: httpx.AsyncClient) -> None:
    """/openapi.json (behind /docs) has the guide's requests as named examples."""
    spec = (await api.get("/openapi.json")).json()
    inject = spec["paths"]["/api/inject/{chargePointId}"]["post"]
    examples = inject["requestBody"]["content"]["application/json"]["examples"]
    assert {
        "scenario-a-grid-limit",
        "scenario-b-time-of-use",
        "scenario-c-throttle-session",
        "clear-profile",
        "get-composite-schedule",
        "get-configuration",
        "change-configuration",
        "get-charging-profiles-2.0.1-collect",
    } <= set(examples)
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            assert bool(operation.get("security")) == path.startswith("/api/"), path
