"""The API's security on a real NATS: charger credentials, headers, body limits, URLs.

The charger-credential routes are checked against what they leave in the
``{P}_charger_auth`` bucket (the relay's side of the contract); the hardening middleware
against the real app (in-process, and behind uvicorn where the server matters).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import re
import sqlite3
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.kv import KeyValue
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from oye_api.charger_credentials import CredentialStore
from oye_cli.simulator.charger import SimulatedCharger
from oye_logger.consumer import ConsumerOptions
from oye_logger.main import run as run_logger
from oye_shared.bus import confirmed
from oye_shared.charger_auth import (
    CHARGER_AUTH_BUCKET,
    MAX_CHARGER_PASSWORD,
    ChargerCredential,
    charger_hasher,
    verify_password,
)
from oye_shared.headers import now_rfc3339
from oye_shared.inject import InjectOutcome, InjectReply, InjectRequest
from oye_shared.kv import get_entry
from oye_shared.settings import Settings
from oye_shared.state import ChargerState, ChargerStatus
from oye_shared.subjects import kv_key
from tests.integration.api_support import (
    PASSWORD,
    Answer,
    FakeRelay,
    answering,
    bucket,
    client,
    running_api,
    running_app,
    with_admin,
)
from tests.support.relay import eventually, service_running
from tests.support.stack import ADMIN_PASSWORD, Stack, api_running, stack_running

pytestmark = pytest.mark.integration

CP = "CP-SEC"
CHOSEN = "a-chosen-charger-password"  # 25 characters
HASHER = charger_hasher()


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_api(with_admin(settings)) as http:
        yield http


async def credential(nc: Client, settings: Settings, cp: str) -> ChargerCredential | None:
    entry = await get_entry(await bucket(nc, settings, CHARGER_AUTH_BUCKET), kv_key(cp))
    if entry is None or entry.value is None:
        return None
    return ChargerCredential.model_validate_json(entry.value)


async def mark_pending(
    kv: KeyValue, cp: str, *, presented: str | None = None, address: str = "192.0.2.50"
) -> None:
    """What a relay writes for an unknown charger it holds for approval."""
    record = ChargerCredential(
        charge_point_id=cp,
        pending_since=now_rfc3339(),
        pending_address=address,
        pending_password_hash=HASHER.hash(presented) if presented else None,
    )
    await kv.put(kv_key(cp), record.model_dump_json(by_alias=True).encode())


# --- setting, rotating and revoking a password ------------------------------------------


async def test_a_chosen_password_is_stored_only_as_its_argon2id_hash(
    api: httpx.AsyncClient, nc: Client, settings: Settings
) -> None:
    """PUT with a password: 200, the answer shows neither it nor a hash; KV holds an
    argon2id hash that verifies it, and the charger is approved."""
    response = await api.put(f"/api/chargers/{CP}/password", json={"password": CHOSEN})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["chargePointId"] == CP
    assert body["approved"] is True
    assert body["hasPassword"] is True
    assert body["password"] is None
    assert CHOSEN not in response.text
    assert "argon2" not in response.text
    stored = await credential(nc, settings, CP)
    assert stored is not None
    assert stored.approved
    assert stored.password_hash is not None
    assert stored.password_hash.startswith("$argon2id$")
    assert verify_password(HASHER, stored.password_hash, CHOSEN)


async def test_without_a_password_one_is_generated_shown_once_and_rotated_by_the_next(
    api: httpx.AsyncClient, nc: Client, settings: Settings
) -> None:
    """PUT with no body generates a 40-character password, in that answer only; a second
    PUT replaces it (the first no longer verifies)."""
    first = await api.put(f"/api/chargers/{CP}/password")
    second = await api.put(f"/api/chargers/{CP}/password", json={})
    assert first.status_code == second.status_code == 200
    old, new = first.json()["password"], second.json()["password"]
    assert len(old) == len(new) == MAX_CHARGER_PASSWORD
    assert old != new
    assert first.headers["cache-control"] == "no-store"
    stored = await credential(nc, settings, CP)
    assert stored is not None
    assert stored.password_hash is not None
    assert verify_password(HASHER, stored.password_hash, new)
    assert not verify_password(HASHER, stored.password_hash, old)


@pytest.mark.parametrize(
    "password",
    ["too-short", "x" * 41, "non-ascii-pässword-long", "tab\tin-the-password!"],
)
async def test_a_password_chargers_cannot_use_is_422_and_nothing_is_stored(
    api: httpx.AsyncClient, nc: Client, settings: Settings, password: str
) -> None:
    """16 to 40 printable ASCII characters (OCPP's BasicAuthPassword), else 422."""
    response = await api.put(f"/api/chargers/{CP}/password", json={"password": password})
    assert response.status_code == 422
    assert "password must be" in response.json()["detail"]
    assert await credential(nc, settings, CP) is None


async def test_unknown_fields_and_bad_ids_are_422(api: httpx.AsyncClient) -> None:
    """Only "password" is accepted; an id the relay would refuse is refused here too."""
    extra = await api.put(f"/api/chargers/{CP}/password", json={"pw": CHOSEN})
    spaced = await api.put("/api/chargers/%20CP/password", json={"password": CHOSEN})
    control = await api.put("/api/chargers/C%01P/password", json={"password": CHOSEN})
    long = await api.put(f"/api/chargers/{'x' * 129}/password", json={"password": CHOSEN})
    empty = await api.put("/api/chargers//password", json={"password": CHOSEN})
    assert [r.status_code for r in (extra, spaced, control, long, empty)] == [422] * 5


async def test_revoking_removes_password_and_approval_and_is_404_twice(
    api: httpx.AsyncClient, nc: Client, settings: Settings
) -> None:
    """DELETE: 204, no hash and no approval in KV (the charger is unknown again); again:
    404; approving it is 404 too (it is not pending: the owner revoked it)."""
    await api.put(f"/api/chargers/{CP}/password", json={"password": CHOSEN})
    revoked = await api.delete(f"/api/chargers/{CP}/password")
    again = await api.delete(f"/api/chargers/{CP}/password")
    never = await api.delete("/api/chargers/NEVER-SEEN/password")
    approve = await api.post(f"/api/chargers/{CP}/approve")
    assert revoked.status_code == 204
    assert again.status_code == never.status_code == approve.status_code == 404
    stored = await credential(nc, settings, CP)
    assert stored is not None
    assert stored.password_hash is None
    assert not stored.approved


async def test_a_revoked_charger_that_tries_again_is_pending_and_can_be_approved(
    api: httpx.AsyncClient, nc: Client, settings: Settings
) -> None:
    """The relay notes a known, unapproved charger by its address (not a new
    pendingSince): it is listed (since: its record's last change) and can be approved."""
    await api.put(f"/api/chargers/{CP}/password", json={"password": CHOSEN})
    await api.delete(f"/api/chargers/{CP}/password")
    kv = await bucket(nc, settings, CHARGER_AUTH_BUCKET)
    entry = await kv.get(kv_key(CP))
    record = ChargerCredential.model_validate_json(entry.value or b"")
    noted = record.model_copy(update={"pending_address": "192.0.2.9", "updated": now_rfc3339()})
    await kv.update(kv_key(CP), noted.model_dump_json(by_alias=True).encode(), last=entry.revision)
    pending = (await api.get("/api/chargers/pending")).json()
    approved = await api.post(f"/api/chargers/{CP}/approve")
    assert [(p["chargePointId"], p["address"], p["since"]) for p in pending] == [
        (CP, "192.0.2.9", noted.updated)
    ]
    assert approved.status_code == 200
    assert approved.json()["approved"] is True
    assert approved.json()["hasPassword"] is False


async def test_ids_are_url_decoded_once_like_the_relays(
    api: httpx.AsyncClient, nc: Client, settings: Settings
) -> None:
    """`RDAM 123` and `a/b` (as %2F) are the ids the relay would read from the same URL."""
    for cp in ("RDAM 123", "a/b", "Zürich.1*"):
        response = await api.put(f"/api/chargers/{quote(cp, safe='')}/password")
        assert response.status_code == 200, (cp, response.text)
        assert response.json()["chargePointId"] == cp
        assert await credential(nc, settings, cp) is not None


# --- pending chargers and approval ------------------------------------------------------


async def test_a_pending_charger_is_listed_then_approved_with_the_password_it_presented(
    api: httpx.AsyncClient, nc: Client, settings: Settings
) -> None:
    """GET /pending lists it (no hash), approve makes its presented password its own."""
    kv = await bucket(nc, settings, CHARGER_AUTH_BUCKET)
    await mark_pending(kv, "CP-NEW", presented=CHOSEN)
    await mark_pending(kv, "CP-BARE")
    pending = await api.get("/api/chargers/pending")
    assert pending.status_code == 200
    assert "argon2" not in pending.text
    listed = {p["chargePointId"]: p for p in pending.json()}
    assert set(listed) == {"CP-NEW", "CP-BARE"}
    assert listed["CP-NEW"]["address"] == "192.0.2.50"
    assert listed["CP-NEW"]["presentedPassword"] is True
    assert listed["CP-BARE"]["presentedPassword"] is False
    assert listed["CP-NEW"]["since"]

    approved = await api.post("/api/chargers/CP-NEW/approve")
    assert approved.status_code == 200
    assert approved.json() == {
        "chargePointId": "CP-NEW",
        "approved": True,
        "hasPassword": True,
        "updated": approved.json()["updated"],
        "pendingSince": None,
        "pendingAddress": None,
    }
    stored = await credential(nc, settings, "CP-NEW")
    assert stored is not None
    assert stored.password_hash is not None
    assert verify_password(HASHER, stored.password_hash, CHOSEN)
    assert stored.pending_password_hash is None
    remaining = await api.get("/api/chargers/pending")
    assert [p["chargePointId"] for p in remaining.json()] == ["CP-BARE"]


async def test_approve_is_404_with_nothing_to_approve_and_idempotent_once_approved(
    api: httpx.AsyncClient, nc: Client, settings: Settings
) -> None:
    """Nothing in KV: 404. An approved charger: 200, unchanged."""
    missing = await api.post("/api/chargers/NOBODY/approve")
    await api.put(f"/api/chargers/{CP}/password", json={"password": CHOSEN})
    before = await credential(nc, settings, CP)
    again = await api.post(f"/api/chargers/{CP}/approve")
    assert missing.status_code == 404
    assert again.status_code == 200
    assert await credential(nc, settings, CP) == before


async def test_setting_a_password_on_a_pending_charger_approves_it_and_drops_what_it_presented(
    api: httpx.AsyncClient, nc: Client, settings: Settings
) -> None:
    """The owner's password wins over the one the pending charger presented."""
    kv = await bucket(nc, settings, CHARGER_AUTH_BUCKET)
    await mark_pending(kv, CP, presented="what-the-charger-sent")
    await api.put(f"/api/chargers/{CP}/password", json={"password": CHOSEN})
    stored = await credential(nc, settings, CP)
    assert stored is not None
    assert stored.approved
    assert stored.pending_since is None
    assert stored.pending_password_hash is None
    assert stored.password_hash is not None
    assert verify_password(HASHER, stored.password_hash, CHOSEN)
    assert (await api.get("/api/chargers/pending")).json() == []


async def test_a_write_racing_a_relays_is_retried_not_lost(nc: Client, settings: Settings) -> None:
    """Compare-and-set: a relay's write between our read and our write makes ours retry
    on the new record, so both land (here: the approval and the relay's new address)."""
    async with running_app(with_admin(settings)):
        kv = await bucket(nc, settings, CHARGER_AUTH_BUCKET)
        await mark_pending(kv, CP, presented=CHOSEN, address="192.0.2.1")

        class RacingKv:
            """The real bucket; before our first update, the relay writes."""

            raced = False

            def __getattr__(self, name: str) -> object:
                return getattr(kv, name)

            async def update(self, key: str, value: bytes, last: int) -> int:
                if not self.raced:
                    self.raced = True
                    await mark_pending(kv, CP, presented=CHOSEN, address="192.0.2.2")
                result: int = await kv.update(key, value, last=last)
                return result

        racing = RacingKv()
        store = CredentialStore(racing)  # type: ignore[arg-type]
        record = await store.approve(CP)
    assert racing.raced
    assert record is not None
    assert record.approved
    stored = await credential(nc, settings, CP)
    assert stored == record
    assert stored.password_hash is not None
    assert verify_password(HASHER, stored.password_hash, CHOSEN)


async def test_pending_is_not_taken_for_a_charger_id_and_the_other_routes_still_work(
    api: httpx.AsyncClient, nc: Client, settings: Settings
) -> None:
    """Route order: /api/chargers/pending is the list, /api/chargers/{id} and
    /api/chargers still answer as before."""
    chargers = await bucket(nc, settings, "chargers")
    state = ChargerState(charge_point_id="CP-1", status=ChargerStatus.OFFLINE, relay="r")
    await chargers.put(kv_key("CP-1"), state.model_dump_json(by_alias=True).encode())
    pending = await api.get("/api/chargers/pending")
    one = await api.get("/api/chargers/CP-1")
    everyone = await api.get("/api/chargers")
    password_get = await api.get("/api/chargers/CP-1/password")
    assert pending.status_code == 200
    assert pending.json() == []
    assert one.status_code == 200
    assert one.json()["chargePointId"] == "CP-1"
    assert [c["chargePointId"] for c in everyone.json()] == ["CP-1"]
    assert password_get.status_code == 404  # there is no GET for a password


async def test_the_admission_routes_need_the_admin(settings: Settings) -> None:
    """No credentials: 401 on all four routes, and nothing is written."""
    async with running_api(with_admin(settings), auth=None) as http:
        responses = [
            await http.get("/api/chargers/pending"),
            await http.put(f"/api/chargers/{CP}/password", json={"password": CHOSEN}),
            await http.delete(f"/api/chargers/{CP}/password"),
            await http.post(f"/api/chargers/{CP}/approve"),
        ]
    assert [r.status_code for r in responses] == [401] * 4


# --- the owner's API drives the relay's admission ---------------------------------------

BOOT = '[2,"boot","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]'


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def boot_status(stack: Stack, cp: str, headers: dict[str, str] | None) -> str | int:
    """The charger's BootNotification answer, or the HTTP status its handshake got."""
    try:
        charger = await connect(
            stack.relay.url(cp), subprotocols=[Subprotocol("ocpp1.6")], additional_headers=headers
        )
    except InvalidStatus as refused:
        return refused.response.status_code
    async with charger:
        await charger.send(BOOT)
        status: str = json.loads(await charger.recv())[2]["status"]
        return status


@pytest.mark.timeout(90)
async def test_pending_approval_rotation_and_revocation_through_the_api_reach_the_relay(
    settings: Settings,
) -> None:
    """local + pending: an unknown charger is held and listed; approving it through the API
    closes it (1012) and its password then gets it in; a rotated password replaces the
    old one; after DELETE it is held for approval again."""
    strict = settings.model_copy(update={"charger_auth": "local", "unknown_chargers": "pending"})
    first, second = "first-password-of-cp-e", "second-password-of-cp-e"
    async with stack_running(strict) as stack, stack.client() as api:
        held = await connect(
            stack.relay.url("CP-E"),
            subprotocols=[Subprotocol("ocpp1.6")],
            additional_headers=basic("CP-E", first),
        )
        async with held:
            await held.send(BOOT)
            assert json.loads(await held.recv())[2]["status"] == "Pending"

            async def listed() -> list[Any]:
                pending: list[Any] = (await api.get("/api/chargers/pending")).json()
                return pending

            [waiting] = await eventually(listed)
            assert waiting["chargePointId"] == "CP-E"
            assert waiting["presentedPassword"] is True
            assert (await api.post("/api/chargers/CP-E/approve")).status_code == 200
            with pytest.raises(ConnectionClosed) as closed:
                await held.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1012  # "service restart": come back, you are in

        assert await boot_status(stack, "CP-E", basic("CP-E", first)) == "Accepted"
        assert await boot_status(stack, "CP-E", basic("CP-E", "a-wrong-password-123")) == 401

        await api.put("/api/chargers/CP-E/password", json={"password": second})

        async def rotated() -> bool:
            return await boot_status(stack, "CP-E", basic("CP-E", first)) == 401

        await eventually(rotated)
        assert await boot_status(stack, "CP-E", basic("CP-E", second)) == "Accepted"

        assert (await api.delete("/api/chargers/CP-E/password")).status_code == 204

        async def revoked() -> bool:
            return await boot_status(stack, "CP-E", basic("CP-E", second)) == "Pending"

        await eventually(revoked)


# --- security headers -------------------------------------------------------------------

BASE_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


async def test_every_response_carries_the_security_headers(settings: Settings) -> None:
    """200, 401, 404, 422 and a no-auth route: nosniff, DENY, no-referrer, a CSP that
    allows nothing and no framing; no-store under /api only; no HSTS over http."""
    async with running_app(with_admin(settings)) as app:
        async with client(app) as http:
            answers = [
                await http.get("/api/config"),
                await http.get("/api/chargers/NOPE"),
                await http.post("/api/config", json={"nope": 1}),
                await http.get("/health"),
                await http.get("/no/such/path"),
            ]
        async with client(app, auth=None) as anonymous:
            answers.append(await anonymous.get("/api/config"))
    assert [r.status_code for r in answers] == [200, 404, 422, 200, 404, 401]
    for response in answers:
        for name, value in BASE_HEADERS.items():
            assert response.headers[name] == value, (response.url, name)
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy
        assert "frame-ancestors 'none'" in policy
        assert "strict-transport-security" not in response.headers
        expected_cache = "no-store" if response.url.path.startswith("/api/") else None
        assert response.headers.get("cache-control") == expected_cache, response.url


async def test_hsts_only_when_the_request_came_over_https(settings: Settings) -> None:
    """Strict-Transport-Security is sent on https requests (e.g. behind a TLS proxy)."""
    async with running_app(with_admin(settings)) as app:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="https://api") as https:
            secure = await https.get("/health")
        async with client(app) as http:
            plain = await http.get("/health")
    assert secure.headers["strict-transport-security"].startswith("max-age=")
    assert "strict-transport-security" not in plain.headers


async def test_the_docs_page_may_load_exactly_its_cdn_assets_and_its_own_inline_script(
    api: httpx.AsyncClient,
) -> None:
    """/docs: scripts from jsDelivr and the page's one inline script (by its hash), the
    OpenAPI document from 'self'; still no framing. /openapi.json keeps the strict policy."""
    page = await api.get("/docs")
    spec = await api.get("/openapi.json")
    assert page.status_code == 200
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in page.headers["content-security-policy"].split(";")
    )
    inline = re.findall(r"<script>(.*?)</script>", page.text, re.DOTALL)
    assert len(inline) == 1
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    assert policy["script-src"].split() == ["https://cdn.jsdelivr.net", f"'sha256-{digest}'"]
    for url in re.findall(r'(?:src|href)="(https://[^"]+)"', page.text):
        origin = "/".join(url.split("/")[:3])
        assert origin in page.headers["content-security-policy"], url
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["default-src"] == "'none'"
    assert page.headers["x-frame-options"] == "DENY"
    assert int(page.headers["content-length"]) == len(page.content)
    assert spec.headers["content-security-policy"].startswith("default-src 'none'")
    assert "jsdelivr" not in spec.headers["content-security-policy"]


# --- request body size -------------------------------------------------------------------


async def test_a_body_declared_too_large_is_413_before_anything_is_read(
    settings: Settings, nc: Client
) -> None:
    """Content-Length over OYE_MAX_HTTP_BODY_BYTES: 413 with a JSON detail, before auth and
    before the route (the relay is never asked)."""
    limit = 4096
    async with running_app(with_admin(settings, max_http_body_bytes=limit)) as app:
        body = json.dumps({"action": "DataTransfer", "payload": {"vendorId": "x" * limit}})
        async with FakeRelay(nc, settings, CP, answering_nothing()) as relay:
            async with client(app) as http:
                response = await http.post(f"/api/inject/{CP}", content=body)
            async with client(app, auth=None) as anonymous:
                unauthenticated = await anonymous.post(f"/api/inject/{CP}", content=body)
            assert relay.requests.empty()
    assert response.status_code == unauthenticated.status_code == 413
    assert "4096 bytes" in response.json()["detail"]
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_a_chunked_body_is_cut_off_as_soon_as_it_passes_the_limit(
    settings: Settings, nc: Client
) -> None:
    """No Content-Length (chunked): 413 once the chunks add up to more than the limit; the
    rest of the stream is never pulled."""
    limit, chunk, chunks = 4096, 1000, 100
    pulled = 0

    async def stream() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(chunks):
            pulled += 1
            yield b" " * chunk

    async with (
        running_app(with_admin(settings, max_http_body_bytes=limit)) as app,
        FakeRelay(nc, settings, CP, answering_nothing()) as relay,
        client(app) as http,
    ):
        response = await http.post(
            f"/api/inject/{CP}", content=stream(), headers={"content-type": "application/json"}
        )
        assert relay.requests.empty()
    assert response.status_code == 413
    assert "4096 bytes" in response.json()["detail"]
    assert pulled <= limit // chunk + 2


async def test_a_body_under_the_limit_still_works(settings: Settings, nc: Client) -> None:
    """Just under the limit, an injection goes through as before."""
    reply = InjectReply(outcome=InjectOutcome.RESULT, frame='[3,"m",{}]', message_id="m")
    body = json.dumps({"action": "Heartbeat", "payload": {}, "validate": False})
    async with (
        running_app(with_admin(settings, max_http_body_bytes=len(body))) as app,
        FakeRelay(nc, settings, CP, answering(reply)),
        client(app) as http,
    ):
        response = await http.post(
            f"/api/inject/{CP}", content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == 200, response.text


async def test_uvicorn_answers_a_streamed_oversized_body_with_413(settings: Settings) -> None:
    """Over a real socket with chunked transfer encoding: the server answers 413 while the
    client is still sending, and keeps serving."""
    limit = 4096
    configured = with_admin(settings, max_http_body_bytes=limit)
    async with api_running(configured):
        reader, writer = await asyncio.open_connection("127.0.0.1", settings.http_port)
        auth = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
        writer.write(
            f"POST /api/config HTTP/1.1\r\nHost: api\r\nAuthorization: Basic {auth}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )

        async def send_forever() -> None:
            for _ in range(10_000):  # 10 MB in all, far more than is ever read
                writer.write(b"400\r\n" + b" " * 1024 + b"\r\n")
                await writer.drain()

        sender = asyncio.create_task(send_forever())
        try:
            async with asyncio.timeout(10):
                status_line = await reader.readline()
                head = await reader.readuntil(b"\r\n\r\n")
        finally:
            sender.cancel()
            writer.close()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.http_port}") as http:
            still = await http.get("/health")
    assert status_line.split()[1] == b"413"
    assert b"application/json" in head.lower()
    assert still.status_code == 200


def answering_nothing() -> Answer:
    async def answer(request: InjectRequest) -> InjectReply | None:
        return None

    return answer


# --- credentials in URLs ------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "password=hunter2hunter2",
        "passwd=x",
        "secret=x",
        "token=x",
        "apikey=x",
        "api_key=x",
        "Api-Key=x",
        "Authorization=Basic%20eDp5",
        "limit=5&PASSWORD=x",
    ],
)
async def test_credentials_in_the_query_are_400_asking_for_the_header(
    api: httpx.AsyncClient, query: str
) -> None:
    """Even with valid Basic credentials, a secret-looking parameter is refused."""
    response = await api.get(f"/api/config?{query}")
    assert response.status_code == 400
    assert "Authorization header" in response.json()["detail"]
    assert "hunter2" not in response.text
    assert response.headers["x-frame-options"] == "DENY"


async def test_harmless_parameters_pass(api: httpx.AsyncClient) -> None:
    """Names that only contain a secret word are not refused."""
    response = await api.get("/api/config?tokens=1&secretary=2&passwords=3")
    assert response.status_code == 200


async def test_a_refused_password_in_the_url_never_reaches_the_access_log(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """uvicorn logs the request line from the same scope: the value is *** there."""
    sentinel = "url-secret-4bd2e0c1"
    with caplog.at_level(logging.DEBUG):
        async with api_running(with_admin(settings)):
            base = f"http://127.0.0.1:{settings.http_port}"
            async with httpx.AsyncClient(base_url=base) as http:
                response = await http.get(f"/api/config?password={sentinel}&limit=2")
    assert response.status_code == 400
    # The test's own client (httpx, httpcore) logs the URL it was given; the server must not.
    server_side = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    text = "\n".join(r.getMessage() for r in server_side)
    assert sentinel not in text
    assert "password=***" in text


# --- throttling ---------------------------------------------------------------------------


async def test_a_locked_out_address_is_told_in_seconds_when_it_may_retry(
    settings: Settings,
) -> None:
    """After 5 failures: 429 with Retry-After in delta-seconds (1..60) and the security
    headers. The 401s before it carry no Retry-After: they are about the credentials,
    and RFC 9110 gives Retry-After no meaning on a 401 (the 429 is where it counts)."""
    attacker = "192.0.2.99"
    async with running_app(with_admin(settings)) as app:
        async with client(app, auth=("admin", "wrong wrong wrong"), address=attacker) as http:
            failures = [await http.get("/api/config") for _ in range(5)]
        async with client(app, address=attacker) as http:
            locked = await http.get("/api/config")
            pending = await http.get("/api/chargers/pending")
    assert [r.status_code for r in failures] == [401] * 5
    assert all("retry-after" not in r.headers for r in failures)
    for response in (locked, pending):
        assert response.status_code == 429
        value = response.headers["retry-after"]
        assert re.fullmatch(r"[1-9][0-9]*", value), value
        assert 1 <= int(value) <= 60
        assert f"try again in {value} s" in response.json()["detail"]
        assert response.headers["x-content-type-options"] == "nosniff"


# --- secrets never reach a log line, a NATS message or a stored row ---------------------

ADMIN_WRONG = "not-the-admin-password-7f3a"
CHARGER_WRONG = "not-the-charger-password-91c"
#: Sent to the charger as its new AuthorizationKey by an injected ChangeConfiguration.
CHARGER_ROTATED = "rotated-over-ocpp-5d0e"


def _haystack_of(record: logging.LogRecord) -> str:
    parts = [record.getMessage(), repr(record.args)]
    if record.exc_info and record.exc_info[1] is not None:
        parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


def _needles(secrets_by_name: dict[str, str], users: dict[str, str]) -> dict[str, str]:
    """Each secret, and every Authorization value (and its base64) that carried one."""
    needles = dict(secrets_by_name)
    for name, secret in secrets_by_name.items():
        user = users.get(name, "admin")
        token = base64.b64encode(f"{user}:{secret}".encode()).decode()
        needles[f"{name} as Basic credentials"] = token
        needles[f"{name} base64"] = base64.b64encode(secret.encode()).decode()
    return needles


async def _stored_rows(settings: Settings) -> list[str]:
    def read() -> list[str]:
        path = settings.data_dir / "oye-log.sqlite3"
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            return [repr(row) for table in tables for row in db.execute(f"SELECT * FROM {table}")]
        finally:
            db.close()

    return await asyncio.to_thread(read)


@pytest.mark.timeout(120)
async def test_no_password_or_authorization_value_reaches_logs_nats_or_the_traffic_store(
    settings: Settings, nc: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """A standalone stack checking chargers itself: admin logins (right, wrong, and a
    password in a URL), charger passwords set through the API (chosen and generated),
    a charger connecting with Basic auth and talking, another with a wrong password, a
    takeover attempt with a wrong one, a new AuthorizationKey injected into the charger.
    Every log line at DEBUG, every NATS message on `>` (subject, headers, body) and every
    stored row is searched for each secret and for each Authorization value that carried
    one (and their base64). The one exception: the injection's request to the relay
    (``oye.inject.*``, core NATS, never stored) carries the payload the owner sent."""
    local = settings.model_copy(update={"charger_auth": "local"})
    seen: list[str] = []

    async def capture(msg: Msg) -> None:
        seen.append(f"{msg.subject} {dict(msg.headers or {})!r} {msg.data!r}")

    websockets_logger = logging.getLogger("websockets")
    level = websockets_logger.level
    # As oye_shared.logs.configure_logging does in every service (whatever OYE_LOG_LEVEL):
    # websockets' DEBUG lines include every handshake header, Authorization too.
    websockets_logger.setLevel(logging.WARNING)
    subscription = await nc.subscribe(">", cb=capture)
    await confirmed(nc)
    try:
        with caplog.at_level(logging.DEBUG):
            async with stack_running(local) as stack, service_running(run_logger, stack.settings):
                async with stack.client() as http:
                    assert (await http.get("/api/config")).status_code == 200
                    chosen = await http.put(
                        f"/api/chargers/{CP}/password", json={"password": CHOSEN}
                    )
                    generated = await http.put("/api/chargers/CP-OTHER/password")
                    in_url = await http.get(f"/api/config?password={ADMIN_PASSWORD}")
                async with stack.client(ADMIN_WRONG) as wrong_admin:
                    assert (await wrong_admin.get("/api/config")).status_code == 401
                assert chosen.status_code == generated.status_code == 200
                assert in_url.status_code == 400
                generated_password = generated.json()["password"]

                url = stack.relay.url(CP)
                async with SimulatedCharger(url, CP, password=CHOSEN) as charger:
                    await charger.boot()
                    await charger.heartbeat()
                    await charger.authorize("TAG-1")
                    for intruder_id in (CP, "CP-OTHER"):  # a takeover, a wrong password
                        intruder = SimulatedCharger(
                            stack.relay.url(intruder_id), intruder_id, password=CHARGER_WRONG
                        )
                        with contextlib.suppress(Exception):
                            await intruder.connect()
                        await intruder.close()
                    await charger.heartbeat()
                    async with stack.client() as http:
                        rotated = await http.post(
                            f"/api/inject/{CP}",
                            json={
                                "action": "ChangeConfiguration",
                                "payload": {"key": "AuthorizationKey", "value": CHARGER_ROTATED},
                            },
                        )
                    assert rotated.json() == {"status": "Accepted"}
                consumer = (stack.settings.stream_name, ConsumerOptions().durable)

                async def logger_caught_up() -> bool:
                    js = nc.jetstream()
                    stream = await js.stream_info(consumer[0])
                    info = await js.consumer_info(*consumer)
                    return (
                        info.num_pending == 0
                        and info.num_ack_pending == 0
                        and info.delivered.stream_seq == stream.state.last_seq
                        and any(".events." in s and "disconnected" in s for s in seen)
                    )

                await eventually(logger_caught_up, seconds=30)
                rows = await _stored_rows(stack.settings)
    finally:
        websockets_logger.setLevel(level)
        await subscription.unsubscribe()

    needles = _needles(
        {
            "the admin password": ADMIN_PASSWORD,
            "a wrong admin password": ADMIN_WRONG,
            "the charger password": CHOSEN,
            "a generated charger password": generated_password,
            "a wrong charger password": CHARGER_WRONG,
            "a password set over OCPP": CHARGER_ROTATED,
        },
        users={
            "the charger password": CP,
            "a generated charger password": "CP-OTHER",
            "a wrong charger password": CP,
        },
    )
    needles["the takeover's Basic credentials (other id)"] = base64.b64encode(
        f"CP-OTHER:{CHARGER_WRONG}".encode()
    ).decode()
    # The test's own HTTP client (httpx, httpcore) logs the URLs it was given, and the
    # simulated charger's ``ocpp`` library every frame it gets: they are the peers that
    # hold these secrets, not the proxy (whose services never use the ``ocpp`` logger).
    records = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore", "ocpp"))]
    places = {
        "log line": [_haystack_of(r) for r in records],
        "NATS message": seen,
        "stored row": rows,
    }
    assert rows, "the logger stored nothing: nothing was checked"
    assert any("BootNotification" in m for m in seen)
    assert any(".admission_refused" in m for m in seen)  # the refusals were exercised
    assert any("ChangeConfiguration" in m for m in seen if ".frames." in m)  # published
    leaks = [
        f"{what} in a {place}: {text[:300]!r}"
        for place, texts in places.items()
        for text in texts
        for what, needle in needles.items()
        if needle in text and not (needle == CHARGER_ROTATED and text.startswith("oye.inject."))
    ]
    assert not leaks, "\n".join(leaks)
