"""The dashboard's server side without a browser: what is reachable without login, the
session cookie on the API, cross-site protections, and the live feed's bounds."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie

import httpx
import pytest
from nats.aio.client import Client
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from oye_api.dashboard.feed import (
    MAX_LIVE_FRAME_CHARS,
    MAX_QUEUED_BYTES,
    MAX_QUEUED_FRAMES,
    FeedFilter,
)
from oye_api.dashboard.hub import LiveHub
from oye_api.kv import open_buckets
from oye_cli.simulator import SimulatedCharger
from oye_shared import headers as h
from oye_shared.settings import Settings
from oye_shared.subjects import Direction, Subjects
from tests.support.stack import ADMIN_PASSWORD, Stack, stack_running

pytestmark = pytest.mark.integration

DASHBOARD = {"X-OYE-Dashboard": "1"}


@pytest.fixture
async def stack(settings: Settings) -> AsyncIterator[Stack]:
    async with stack_running(settings) as running:
        yield running


async def session_cookie(stack: Stack, password: str = ADMIN_PASSWORD) -> str:
    async with httpx.AsyncClient(base_url=stack.api_url) as http:
        reply = await http.post("/login", json={"username": "admin", "password": password})
    assert reply.status_code == 204, reply.text
    cookie = SimpleCookie(reply.headers["set-cookie"])["oye_session"]
    assert cookie["httponly"]
    assert cookie["samesite"].lower() == "strict"
    assert cookie["path"] == "/"
    return cookie.value


def cookie_client(stack: Stack, value: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=stack.api_url, cookies={"oye_session": value})


def live(stack: Stack, cookie: str | None, origin: str | None = None) -> connect:
    headers = {"Origin": origin or stack.api_url}
    if cookie is not None:
        headers["Cookie"] = f"oye_session={cookie}"
    url = stack.api_url.replace("http://", "ws://") + "/dashboard/live"
    return connect(url, additional_headers=headers, open_timeout=5)


async def receive(socket: ClientConnection) -> dict[str, object]:
    async with asyncio.timeout(5):
        message: dict[str, object] = json.loads(await socket.recv())
    return message


async def test_nothing_but_the_login_page_is_reachable_without_login(stack: Stack) -> None:
    """The page redirects, assets and reads answer 401, the live feed refuses; the login
    page and its own three files are served, with a policy that allows this origin only."""
    async with httpx.AsyncClient(base_url=stack.api_url) as http:
        home = await http.get("/")
        assert home.status_code == 303
        assert home.headers["location"] == "/login"
        for path in (
            "/dashboard/static/index.html",
            "/dashboard/static/js/main.js",
            "/dashboard/static/js/nothing-here.js",
            "/dashboard/catalog",
            "/dashboard/me",
            "/dashboard/limits/CP1",
        ):
            assert (await http.get(path)).status_code == 401, path
        login = await http.get("/login")
        assert login.status_code == 200
        assert "text/html" in login.headers["content-type"]
        policy = login.headers["content-security-policy"]
        assert "default-src 'none'" in policy
        assert "script-src 'self'" in policy
        assert "connect-src 'self'" in policy
        for asset in ("login.js", "app.css", "favicon.svg"):
            assert (await http.get(f"/dashboard/static/{asset}")).status_code == 200, asset
    with pytest.raises(InvalidStatus) as refused:
        async with live(stack, cookie=None):
            pass
    assert refused.value.response.status_code == 403


async def test_the_session_cookie_opens_the_api_and_basic_works_as_before(stack: Stack) -> None:
    """With the cookie: reads work, writes need the dashboard header. Basic credentials,
    when sent, decide alone; the dashboard's unauthenticated calls get no Basic challenge."""
    cookie = await session_cookie(stack)
    async with cookie_client(stack, cookie) as http:
        assert (await http.get("/api/config")).status_code == 200
        assert (await http.get("/dashboard/me")).json() == {"user": "admin"}
        change = {"defaultIdTag": "FROM-COOKIE"}
        forged = await http.post("/api/config", json=change)
        assert forged.status_code == 403
        assert "X-OYE-Dashboard" in forged.json()["detail"]
        assert (await http.post("/api/config", json=change, headers=DASHBOARD)).status_code == 200
        wrong_basic = await http.get("/api/config", auth=("admin", "not the password"))
        assert wrong_basic.status_code == 401
        home = await http.get("/")
        assert home.status_code == 200
        assert "oye_session" in home.headers["set-cookie"]  # renewed on every load
    async with httpx.AsyncClient(base_url=stack.api_url) as http:
        spa = await http.get("/api/config", headers=DASHBOARD)
        assert spa.status_code == 401
        assert "www-authenticate" not in spa.headers
        plain = await http.get("/api/config")
        assert plain.status_code == 401
        assert plain.headers["www-authenticate"].startswith("Basic")
    async with stack.client() as basic:
        assert (await basic.get("/api/config")).json()["defaultIdTag"] == "FROM-COOKIE"


async def test_a_forged_expired_or_outdated_cookie_opens_nothing(stack: Stack) -> None:
    """A changed signature or body is refused; a password change ends every session
    issued before it."""
    cookie = await session_cookie(stack)
    version, body, signature = cookie.split(".")
    for forged in (f"{version}.{body}.{signature[:-2]}AA", f"{version}.{body}x.{signature}"):
        async with cookie_client(stack, forged) as http:
            assert (await http.get("/api/config", headers=DASHBOARD)).status_code == 401
            assert (await http.get("/")).status_code == 303
    new = "another long enough password"
    async with cookie_client(stack, cookie) as http:
        changed = await http.post(
            "/api/change-password",
            json={"currentPassword": ADMIN_PASSWORD, "newPassword": new},
            headers=DASHBOARD,
        )
        assert changed.status_code == 204
        assert (await http.get("/api/config", headers=DASHBOARD)).status_code == 401
    fresh = await session_cookie(stack, password=new)
    async with cookie_client(stack, fresh) as http:
        assert (await http.get("/api/config", headers=DASHBOARD)).status_code == 200


async def test_failed_dashboard_logins_are_throttled_like_basic_ones(stack: Stack) -> None:
    """The login form shares the API's per-address throttle: after five failures, 429."""
    async with httpx.AsyncClient(base_url=stack.api_url) as http:
        for _ in range(5):
            wrong = await http.post("/login", json={"username": "admin", "password": "nope"})
            assert wrong.status_code == 401
        throttled = await http.post(
            "/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        )
        assert throttled.status_code == 429
        assert int(throttled.headers["retry-after"]) > 0
        foreign = await http.post(
            "/login",
            json={"username": "admin", "password": ADMIN_PASSWORD},
            headers={"Origin": "http://evil.example"},
        )
        assert foreign.status_code == 403


async def test_the_live_feed_refuses_pages_of_other_sites(stack: Stack) -> None:
    """The cookie alone is not enough: the Origin must be the API's own."""
    cookie = await session_cookie(stack)
    with pytest.raises(InvalidStatus) as refused:
        async with live(stack, cookie, origin="http://evil.example"):
            pass
    assert refused.value.response.status_code == 403


async def test_the_live_feed_pushes_charger_states_and_the_frames_its_filter_wants(
    stack: Stack,
) -> None:
    """First the fleet, then each change; with a charger filter only that charger's frames
    come (events of all chargers still do)."""
    cookie = await session_cookie(stack)
    async with live(stack, cookie) as socket:
        assert await receive(socket) == {"type": "chargers", "chargers": []}
        await socket.send(json.dumps({"type": "filter", "chargePointId": "A"}))
        async with (
            SimulatedCharger(stack.relay.url("A"), "A", version="1.6") as a,
            SimulatedCharger(stack.relay.url("B"), "B", version="2.0.1") as b,
        ):
            await b.boot()
            await a.boot()
            seen: list[dict[str, object]] = []
            booted: set[object] = set()
            while booted != {"A", "B"} or not any(
                m.get("action") == "BootNotification" for m in seen
            ):
                seen.append(message := await receive(socket))
                charger = message.get("charger")
                if isinstance(charger, dict) and charger.get("boot"):
                    booted.add(charger["chargePointId"])
        frames = [m for m in seen if m["type"] == "frame"]
        assert {m["cp"] for m in frames} == {"A"}
        call = next(m for m in frames if m["messageType"] == "CALL")
        assert call["direction"] == Direction.UPSTREAM
        assert json.loads(str(call["raw"]))[2] == "BootNotification"
        assert isinstance(call["ts"], float)
        states = {
            m["charger"]["chargePointId"]  # type: ignore[index]
            for m in seen
            if m["type"] == "charger"
        }
        assert states == {"A", "B"}
        assert {m["cp"] for m in seen if m["type"] == "event"} >= {"A", "B"}


async def test_a_browser_that_does_not_read_cannot_hold_up_the_others(
    settings: Settings, nc: Client
) -> None:
    """The hub never waits for a browser: one that takes nothing keeps at most its bound
    (the oldest dropped, and announced), another gets every frame; with no browser left
    the hub lets go of NATS."""
    prefix = settings.subject_prefix
    hub = LiveHub(nc, await open_buckets(nc, prefix, login_window=60), prefix)
    subject = Subjects(prefix).frames("CP", Direction.UPSTREAM)
    count = MAX_QUEUED_FRAMES * 3
    async with hub.joined() as stuck, hub.joined(FeedFilter(charge_point_id="CP")) as reader:
        assert hub.running
        received = 0
        # In bursts the reader keeps up with (a burst beyond its bound would cost it the
        # oldest frames too, as it should); the stuck one is offered every frame.
        burst = MAX_QUEUED_FRAMES // 2
        for start in range(0, count, burst):
            for n in range(start, start + burst):
                frame = json.dumps([2, str(n), "Heartbeat", {}])
                await nc.publish(subject, frame.encode(), headers={h.CHARGE_POINT: "CP"})
            async with asyncio.timeout(10):
                while received < start + burst:
                    received += len(await reader.next_batch())
        assert received == count
        assert reader.dropped_total == 0
        assert stuck.pending == MAX_QUEUED_FRAMES
        assert stuck.dropped_total == count - MAX_QUEUED_FRAMES
        batch = stuck.take()
        assert json.loads(batch[0]) == {"type": "dropped", "count": count - MAX_QUEUED_FRAMES}
        assert json.loads(batch[-1])["raw"] == json.dumps([2, str(count - 1), "Heartbeat", {}])

        # Large frames: the bytes bound holds (and the live view cuts each frame).
        big = b"x" * (MAX_LIVE_FRAME_CHARS + 1)
        for _ in range(3 * MAX_QUEUED_BYTES // MAX_LIVE_FRAME_CHARS):
            await nc.publish(subject, big, headers={h.CHARGE_POINT: "CP"})
        await nc.publish(subject, b"the last one", headers={h.CHARGE_POINT: "CP"})
        async with asyncio.timeout(10):  # the reader has it: the stuck one was offered all
            while not any(
                json.loads(text).get("raw") == "the last one" for text in await reader.next_batch()
            ):
                pass
        kept = [json.loads(text) for text in stuck.take()]
        assert kept[0]["type"] == "dropped"
        assert sum(len(json.dumps(m)) for m in kept) <= MAX_QUEUED_BYTES + 1024
        assert kept[-1]["raw"] == "the last one"
        assert all(m["truncated"] for m in kept[1:-1])
    assert hub.clients == 0
    assert not hub.running
