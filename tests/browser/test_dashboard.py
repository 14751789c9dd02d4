"""The dashboard in headless Chromium, against the real stack and simulated chargers: what
the issue's "Tests must show" asks, one behaviour per test."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable
from typing import Literal
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Locator, Page, expect

from oye_api.ocpp_text import result_payload_text
from oye_cli.simulator import SimulatedCharger
from oye_cli.simulator.frame_log import is_call, is_reply_to
from tests.browser.conftest import PHONE, Browsing, Screenshot, Site, log_in
from tests.support.stack import ADMIN_PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]


def frames(page: Page, **data: str) -> str:
    """A CSS selector for traffic rows with these data attributes (cp=, action=, ...)."""
    names = {"message_id": "message-id"}
    return "#frames li.frame" + "".join(f'[data-{names.get(k, k)}="{v}"]' for k, v in data.items())


async def within(seconds: float, action: Awaitable[object]) -> float:
    """Await ``action``; the seconds it took, failing if more than ``seconds``."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    await action
    took = loop.time() - began
    assert took <= seconds, f"took {took:.3f} s, more than {seconds} s"
    return took


async def assert_drawn(plot: Locator, expected: list[tuple[int, float]]) -> None:
    """The plot's step line, read back from the SVG, is ``expected`` [(seconds, limit)]:
    each corner of ``path.line`` is mapped through the axes as drawn (the x axis spans the
    window, the y grid lines sit at their ticks), to within the coordinates' rounding."""
    drawn = await plot.evaluate(
        """svg => ({
            duration: Number(svg.dataset.duration),
            xAxis: [...svg.querySelectorAll("line.axis")]
                .map((l) => ["x1", "x2", "y1", "y2"].map((a) => Number(l.getAttribute(a))))
                .find(([x1, x2, y1, y2]) => y1 === y2 && x1 !== x2),
            grid: [...svg.querySelectorAll("line.grid")].map((l) => Number(l.getAttribute("y1"))),
            ticks: [...svg.querySelectorAll('text.tick[text-anchor="end"]')]
                .map((t) => Number(t.textContent)),
            corners: svg.querySelector("path.line").getAttribute("d").split(" ")
                .map((p) => p.slice(1).split(",").map(Number)),
        })"""
    )
    x0, x1 = drawn["xAxis"][0], drawn["xAxis"][1]
    (y0, *_, y1), (v0, *_, v1) = drawn["grid"], drawn["ticks"]
    times = [(x - x0) / (x1 - x0) * drawn["duration"] for x, _ in drawn["corners"]]
    limits = [v0 + (y - y0) / (y1 - y0) * (v1 - v0) for _, y in drawn["corners"]]
    assert times == pytest.approx([t for t, _ in expected], abs=5)
    assert limits == pytest.approx([v for _, v in expected], rel=0.005)


async def test_login_refuses_a_wrong_password_and_accepts_the_right_one(
    browsing: Browsing,
) -> None:
    """Wrong password: an error on the login page, nothing else reachable. Right one: the
    dashboard. Logging out leads back to the login page."""
    page = await browsing.page()
    await page.goto("/")
    await page.wait_for_url("**/login")
    assert (await page.request.get("/dashboard/static/js/main.js")).status == 401
    assert (await page.request.get("/dashboard/catalog")).status == 401

    await page.fill("#password", "not the password")
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#login-error")).to_have_text("Wrong user name or password.")
    assert urlsplit(page.url).path == "/login"
    await page.goto("/")
    assert urlsplit(page.url).path == "/login"

    await page.fill("#password", ADMIN_PASSWORD)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_url(lambda url: urlsplit(url).path == "/")
    await expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    await expect(page.locator("#who")).to_have_text("admin")
    cookie = next(c for c in await page.context.cookies() if c["name"] == "oye_session")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"

    await page.click("#logout")
    await page.wait_for_url("**/login")
    await page.goto("/")
    assert urlsplit(page.url).path == "/login"


async def test_a_connecting_charger_appears_within_2_s_and_goes_offline_when_it_drops(
    site: Site, dashboard: Page
) -> None:
    """No reload: the card appears, fills in from the boot and status, and turns OFFLINE."""
    await dashboard.evaluate("window.sameDocument = true")
    card = dashboard.locator('.charger[data-cp="Garage Box.1"]')
    charger = SimulatedCharger(site.relay.url("Garage Box.1"), "Garage Box.1", version="1.6")
    loop = asyncio.get_running_loop()
    began = loop.time()
    await charger.connect()
    try:
        await expect(card).to_have_attribute("data-status", "ONLINE", timeout=2000)
        assert loop.time() - began <= 2.0
        await expect(card.locator(".version")).to_have_text("OCPP 1.6")
        await charger.boot(
            charge_point_vendor="Alfen", charge_point_model="Eve", firmware_version="5.8.1"
        )
        await charger.status(1, "Charging")
        await expect(card.locator(".model")).to_have_text("Alfen · Eve")
        await expect(card.locator(".firmware")).to_have_text("5.8.1")
        await expect(card.locator('.chip[data-connector="1"]')).to_have_text("1: Charging")
        await expect(card.locator(".since")).to_contain_text("ago")
        await expect(card.locator(".backlog")).to_have_attribute("data-count", "0")
        charger.drop()
        await expect(card).to_have_attribute("data-status", "OFFLINE", timeout=5000)
        await expect(card.locator(".seen")).to_contain_text("ago")
    finally:
        await charger.close()
    assert await dashboard.evaluate("window.sameDocument") is True  # never reloaded


async def test_a_charger_frame_appears_in_the_traffic_view_within_1_s_with_its_answer(
    site: Site, browsing: Browsing, dashboard: Page
) -> None:
    """The Heartbeat the charger sends is pushed over the live WebSocket (the log is not
    asked) and shows at once with its time, then pairs with the proxy's answer, with the
    time between them; opening the row shows both frames as indented JSON."""
    async with SimulatedCharger(site.relay.url("CP1"), "CP1", version="1.6") as charger:
        await charger.boot()
        await dashboard.click('#nav a[data-view="traffic"]')
        await expect(dashboard.locator("#older")).to_have_text(
            re.compile("No older frames in the log|Scroll for older frames")
        )
        row = dashboard.locator(frames(dashboard, cp="CP1", action="Heartbeat"))
        await expect(row).to_have_count(0)
        asked_before = len(browsing.requested)
        sent = asyncio.ensure_future(charger.heartbeat())
        await within(1.0, expect(row).to_be_visible(timeout=1000))
        await sent
        await expect(row).to_have_attribute("data-paired", "true")
        await expect(row).to_have_attribute("data-direction", "UPSTREAM")
        asked = [urlsplit(url).path for url in browsing.requested[asked_before:]]
        assert "/api/logs" not in asked  # pushed, never polled
        pushed = [json.loads(text) for text in browsing.pushed]
        assert any(
            m.get("type") == "frame" and m.get("cp") == "CP1" and m.get("action") == "Heartbeat"
            for m in pushed
        )
        await expect(row.locator(".time")).to_have_text(re.compile(r"^\d\d:\d\d:\d\d\.\d{3}$"))
        latency = await row.locator(".answer").get_attribute("data-latency-ms")
        assert latency is not None
        assert float(latency) >= 0
        await expect(row.locator(".answer")).to_contain_text(re.compile(r"CALLRESULT \d"))
        await row.locator("button").click()
        bodies = row.locator(".frame-body pre")
        await expect(bodies).to_have_count(2)
        call_text, answer_text = await bodies.all_inner_texts()
        assert call_text.startswith("[\n  2,")  # pretty-printed, not the frame as sent
        assert '\n    "currentTime": ' in answer_text
        call = json.loads(call_text)
        answer = json.loads(answer_text)
        assert call[0] == 2
        assert call[2] == "Heartbeat"
        assert answer[0] == 3
        assert answer[1] == call[1]
        assert "currentTime" in answer[2]


async def test_traffic_filters_and_pause_keep_only_what_is_asked(
    site: Site, dashboard: Page
) -> None:
    """Charger, direction and action filters apply to the frames shown and to those that
    arrive; a paused view holds new frames back until resumed."""
    async with (
        SimulatedCharger(site.relay.url("A"), "A", version="1.6") as a,
        SimulatedCharger(site.relay.url("B"), "B", version="2.0.1") as b,
    ):
        await a.boot()
        await b.boot()
        await a.status(1, "Available")
        await dashboard.click('#nav a[data-view="traffic"]')
        await expect(
            dashboard.locator(frames(dashboard, cp="B", action="BootNotification"))
        ).to_be_visible()

        await dashboard.select_option("#f-cp", "A")
        await expect(dashboard.locator(frames(dashboard, cp="B"))).to_have_count(0)
        await expect(
            dashboard.locator(frames(dashboard, cp="A", action="BootNotification"))
        ).to_be_visible()
        await b.heartbeat()
        await a.heartbeat()
        await expect(
            dashboard.locator(frames(dashboard, cp="A", action="Heartbeat"))
        ).to_be_visible()
        await expect(dashboard.locator(frames(dashboard, cp="B"))).to_have_count(0)

        await dashboard.select_option("#f-cp", "")
        await dashboard.select_option("#f-direction", "DOWNSTREAM")
        await expect(dashboard.locator("#frames li.frame")).to_have_count(0)
        await dashboard.select_option("#f-direction", "UPSTREAM")
        await expect(
            dashboard.locator(frames(dashboard, cp="B", action="Heartbeat"))
        ).to_be_visible()
        shown = dashboard.locator("#frames li.frame")
        directions = await shown.evaluate_all("rows => rows.map(r => r.dataset.direction)")
        assert directions
        assert set(directions) == {"UPSTREAM"}

        await dashboard.select_option("#f-direction", "")
        await dashboard.fill("#f-action", "StatusNotification")
        await dashboard.press("#f-action", "Enter")
        await expect(shown).to_have_count(1)
        await expect(shown).to_have_attribute("data-action", "StatusNotification")

        await dashboard.click("#pause")
        await a.status(2, "Faulted")
        # The call and the charger's answer (the action filter keeps both) wait.
        await expect(dashboard.locator("#traffic-info")).to_have_text("paused · 2 new frames")
        await expect(shown).to_have_count(1)
        await dashboard.click("#pause")
        await expect(shown).to_have_count(2)
        await expect(dashboard.locator("#traffic-info")).to_have_text("2 shown")


async def test_older_frames_load_from_the_log_as_you_scroll(site: Site, browsing: Browsing) -> None:
    """Frames from before the page was opened come from GET /api/logs, a page at a time,
    until the log has no more; calls and answers from the log pair up too."""
    heartbeats = 150
    async with SimulatedCharger(site.relay.url("CP-log"), "CP-log", version="1.6") as charger:
        await charger.boot()
        for _ in range(heartbeats):
            await charger.heartbeat()
        expected = 2 + 2 * heartbeats + 1  # boot, heartbeats with answers, connected
        async with asyncio.timeout(10):
            await site.logged.wait_for(lambda logged: logged.inserted >= expected)
        page = await browsing.page()
        await log_in(page)
        await page.click('#nav a[data-view="traffic"]')
        rows = page.locator(frames(page, action="Heartbeat"))
        await expect(rows.first).to_be_visible()
        assert await rows.count() < heartbeats  # one page of the log, not all of it
        # Keep scrolling to the end of the list until the log has nothing older.
        await page.wait_for_function(
            """() => {
                const older = document.querySelector("#older");
                older.scrollIntoView();
                return older.textContent === "No older frames in the log.";
            }""",
            polling=100,
        )
        await expect(rows).to_have_count(heartbeats)
        assert await page.locator(frames(page, action="Heartbeat", paired="false")).count() == 0
        await expect(page.locator(frames(page, kind="event", action="connected"))).to_have_count(1)


async def test_an_injected_get_configuration_shows_the_chargers_answer(
    site: Site, dashboard: Page
) -> None:
    """The action list is the charger's version's; the answer shown is the charger's own."""
    async with SimulatedCharger(site.relay.url("CP-inj"), "CP-inj", version="1.6") as charger:
        await charger.boot()
        await dashboard.click('#nav a[data-view="inject"]')
        await dashboard.select_option("#inject-cp", "CP-inj")
        await expect(dashboard.locator("#inject-version")).to_have_text("OCPP 1.6")
        actions = await dashboard.locator("#inject-action option").all_inner_texts()
        assert "GetConfiguration" in actions
        assert "GetVariables" not in actions
        await dashboard.select_option("#inject-action", "GetConfiguration")
        await dashboard.select_option("#inject-template", "get-configuration")
        await dashboard.fill("#inject-payload", '{"key": ["HeartbeatInterval"]}')
        await dashboard.click("#inject-send")
        result = dashboard.locator("#inject-result")
        await expect(result).to_have_attribute("data-status", "200")
        await expect(result.locator(".status")).to_contain_text("CP-inj answered GetConfiguration")
        shown = json.loads(await result.locator("pre").inner_text())
        call = charger.frames.find(is_call("GetConfiguration"), direction="received")[-1]
        assert call.message_id is not None
        (answer,) = charger.frames.find(is_reply_to(call.message_id), direction="sent")
        assert shown == json.loads(result_payload_text(answer.text))
        assert shown["configurationKey"][0]["key"] == "HeartbeatInterval"


@pytest.mark.parametrize(
    ("version", "scenario"),
    [("1.6", "scenario-a-grid-limit"), ("2.0.1", "scenario-a-grid-limit-2")],
)
async def test_the_guides_smart_charging_scenarios_are_ready_made_templates(
    site: Site, dashboard: Page, version: Literal["1.6", "2.0.1"], scenario: str
) -> None:
    """The template list holds the guide's scenarios for the charger's version; picking
    one sets the action and the payload, which the charger receives as it is and accepts.
    Picking another action prefills its required fields."""
    catalog = (await (await dashboard.request.get("/dashboard/catalog")).json())["scenarios"]
    offered = {s["id"]: s for s in catalog if version in s["versions"]}
    async with SimulatedCharger(site.relay.url("CP-tpl"), "CP-tpl", version=version) as charger:
        await charger.boot()
        await dashboard.click('#nav a[data-view="inject"]')
        await dashboard.select_option("#inject-cp", "CP-tpl")
        await expect(dashboard.locator("#inject-version")).to_have_text(f"OCPP {version}")
        templates = dashboard.locator("#inject-template optgroup option")
        assert set(await templates.evaluate_all("options => options.map(o => o.value)")) == set(
            offered
        )
        await dashboard.select_option("#inject-template", scenario)
        await expect(dashboard.locator("#inject-action")).to_have_value("SetChargingProfile")
        payload = json.loads(await dashboard.input_value("#inject-payload"))
        assert payload == offered[scenario]["payload"]
        await dashboard.click("#inject-send")
        result = dashboard.locator("#inject-result")
        await expect(result).to_have_attribute("data-status", "200")
        assert json.loads(await result.locator("pre").inner_text()) == {"status": "Accepted"}
        (received,) = charger.frames.find(is_call("SetChargingProfile"), direction="received")
        assert received.payload == payload

        await dashboard.select_option("#inject-action", "Reset")
        await expect(dashboard.locator("#inject-template")).to_have_value("skeleton")
        skeleton = json.loads(await dashboard.input_value("#inject-payload"))
        assert set(skeleton) == {"type"}  # Reset's one required field, in either version


async def test_a_bad_payload_shows_the_error_next_to_the_field(site: Site, dashboard: Page) -> None:
    """The relay's 422 names $.key; the note sits on the line of "key", nothing is sent."""
    async with SimulatedCharger(site.relay.url("CP-bad"), "CP-bad", version="1.6") as charger:
        await charger.boot()
        await dashboard.click('#nav a[data-view="inject"]')
        await dashboard.select_option("#inject-cp", "CP-bad")
        await dashboard.select_option("#inject-action", "GetConfiguration")
        await dashboard.fill(
            "#inject-payload", '{\n  "key": "HeartbeatInterval",\n  "extra": true\n}'
        )
        await dashboard.click("#inject-send")
        await expect(dashboard.locator("#inject-result")).to_have_attribute("data-status", "422")
        note = dashboard.locator('#inject-editor .note[data-path="$.key"]')
        await expect(note).to_contain_text("is not of type 'array'")
        await expect(note).to_have_attribute("data-line", "2")
        await expect(dashboard.locator("#inject-editor .gutter .bad")).to_contain_text(["2"])
        text_box = await dashboard.locator("#inject-payload").bounding_box()
        note_box = await note.bounding_box()
        assert text_box is not None
        assert note_box is not None
        line_height = 20
        assert abs(note_box["y"] - (text_box["y"] + 8 + line_height)) < line_height  # line 2
        await expect(dashboard.locator("#inject-result .problems")).to_contain_text("$.key")
        assert not charger.frames.find(is_call("GetConfiguration"), direction="received")

        await dashboard.fill("#inject-payload", '{"key": [}')
        await dashboard.click("#inject-send")
        await expect(dashboard.locator('#inject-editor .note[data-path="$"]')).to_contain_text(
            "not JSON"
        )


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_setting_a_limit_and_opening_the_plot_shows_the_schedule(
    site: Site, dashboard: Page, screenshot: Screenshot, version: Literal["1.6", "2.0.1"]
) -> None:
    """16 A set through the dashboard is stored, accepted by the charger, and drawn from
    its composite schedule (in A, and in W at 230 V on 3 phases); clearing removes it."""
    async with SimulatedCharger(site.relay.url("CP-sc"), "CP-sc", version=version) as charger:
        await charger.boot()
        await dashboard.click('#nav a[data-view="smart"]')
        await dashboard.select_option("#smart-cp", "CP-sc")
        await expect(dashboard.locator("#smart-stored")).to_have_text("none")
        await dashboard.fill("#limit-max", "16")
        await dashboard.click("#limit-form button[type=submit]")
        await expect(dashboard.locator("#limit-result .status")).to_have_text(
            "Limit set: the charger says Accepted"
        )
        await expect(dashboard.locator("#smart-stored")).to_have_text("16 A")

        await dashboard.select_option("#schedule-duration", "21600")
        await dashboard.click("#schedule-form button[type=submit]")
        plot = dashboard.locator("#schedule-plot")
        await expect(plot).to_have_attribute("data-points", "[[0,16],[21600,16]]")
        await expect(plot).to_have_attribute("data-unit", "A")
        await expect(plot.locator("path.line")).to_have_count(1)
        await expect(plot.locator("text.label", has_text="16 A")).to_have_count(1)
        await assert_drawn(plot, [(0, 16), (21600, 16)])
        saved = await screenshot(dashboard, "schedule")
        assert saved.stat().st_size > 0

        await dashboard.select_option("#schedule-unit", "W")
        await dashboard.click("#schedule-form button[type=submit]")
        await expect(plot).to_have_attribute("data-unit", "W")
        await expect(plot).to_have_attribute("data-points", "[[0,11040],[21600,11040]]")
        await assert_drawn(plot, [(0, 11040), (21600, 11040)])

        await dashboard.fill("#limit-max", "0")
        await dashboard.click("#limit-form button[type=submit]")
        await expect(
            dashboard.locator('#limit-form .field-error[data-for="maxPower"]')
        ).to_contain_text("greater than 0")
        await dashboard.click("#limit-clear")
        await expect(dashboard.locator("#limit-result .status")).to_have_text(
            "Cleared: the charger says Accepted"
        )
        await expect(dashboard.locator("#smart-stored")).to_have_text("none")


async def test_a_configuration_change_is_saved_and_shown_after_reload(
    site: Site, dashboard: Page
) -> None:
    """Saved values come back after a reload; a bad URL is refused next to its field and
    changes nothing."""
    await dashboard.click('#nav a[data-view="config"]')
    form = dashboard.locator("#config-form")
    await expect(form).to_have_attribute("data-loaded", "true")
    await dashboard.fill("#config-defaultIdTag", "GARAGE-1")
    await dashboard.check("#config-autoChargeEnabled")
    await dashboard.uncheck("#config-csmsForwardingEnabled")
    await dashboard.fill("#config-targetCsmsUrl", "wss://csms.example.com/ocpp")
    await dashboard.click("#config-form button[type=submit]")
    await expect(dashboard.locator("#config-status")).to_have_text("Saved.")

    await dashboard.reload()
    await expect(form).to_have_attribute("data-loaded", "true")
    await expect(dashboard.locator("#config-defaultIdTag")).to_have_value("GARAGE-1")
    await expect(dashboard.locator("#config-targetCsmsUrl")).to_have_value(
        "wss://csms.example.com/ocpp"
    )
    await expect(dashboard.locator("#config-autoChargeEnabled")).to_be_checked()
    await expect(dashboard.locator("#config-csmsForwardingEnabled")).not_to_be_checked()

    await dashboard.fill("#config-targetCsmsUrl", "http://not-a-websocket")
    await dashboard.fill("#config-defaultIdTag", "A-TAG-LONGER-THAN-TWENTY")
    await dashboard.click("#config-form button[type=submit]")
    await expect(form.locator('.field-error[data-for="targetCsmsUrl"]')).to_contain_text(
        "ws:// or wss://"
    )
    await expect(form.locator('.field-error[data-for="defaultIdTag"]')).to_contain_text("20")
    await expect(dashboard.locator("#config-targetCsmsUrl")).to_have_attribute(
        "aria-invalid", "true"
    )
    async with site.client() as http:
        stored = (await http.get("/api/config")).json()
    assert stored["targetCsmsUrl"] == "wss://csms.example.com/ocpp"
    assert stored["defaultIdTag"] == "GARAGE-1"


async def test_a_changed_password_is_the_only_one_that_logs_in(
    site: Site, browsing: Browsing
) -> None:
    """Through the account page; the page stays logged in, the old password is refused,
    for the dashboard and for HTTP Basic alike."""
    page = await browsing.page()
    await log_in(page)
    await page.click('#nav a[data-view="account"]')
    form = page.locator("#password-form")
    new = "a new and long enough password"
    await form.locator('[name="currentPassword"]').fill("wrong")
    await form.locator('[name="newPassword"]').fill(new)
    await form.locator('[name="repeat"]').fill(new)
    await form.locator("button[type=submit]").click()
    await expect(form.locator('.field-error[data-for="currentPassword"]')).to_be_visible()
    await form.locator('[name="currentPassword"]').fill(ADMIN_PASSWORD)
    await form.locator('[name="newPassword"]').fill("short")
    await form.locator('[name="repeat"]').fill("short")
    await form.locator("button[type=submit]").click()
    await expect(form.locator('.field-error[data-for="newPassword"]')).to_contain_text("12")
    await form.locator('[name="newPassword"]').fill(new)
    await form.locator('[name="repeat"]').fill(new)
    await form.locator("button[type=submit]").click()
    await expect(page.locator("#password-status")).to_have_text("Password changed.")
    assert (await page.request.get("/api/config", headers={"X-OYE-Dashboard": "1"})).ok

    async with httpx.AsyncClient(base_url=site.api_url) as http:
        assert (await http.get("/api/config", auth=("admin", ADMIN_PASSWORD))).status_code == 401
        assert (await http.get("/api/config", auth=("admin", new))).status_code == 200
    other = await browsing.page()
    await log_in(other, password=new)


async def test_the_dashboard_fits_a_phone_screen(
    site: Site, browsing: Browsing, screenshot: Screenshot
) -> None:
    """At 390 x 844 every section is reachable and nothing needs sideways scrolling."""
    async with SimulatedCharger(site.relay.url("CP-phone"), "CP-phone", version="2.0.1") as charger:
        await charger.boot()
        await charger.status(1, "Available")
        page = await browsing.page(viewport=PHONE)
        await log_in(page)
        await expect(page.locator('.charger[data-cp="CP-phone"]')).to_be_visible()
        for view in ("chargers", "traffic", "inject", "smart", "config", "account"):
            link = page.locator(f'#nav a[data-view="{view}"]')
            await expect(link).to_be_in_viewport()
            await link.click()
            await expect(page.locator(f"#view-{view}")).to_be_visible()
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{view}: {overflow} px wider than the screen"
            if view in ("chargers", "traffic", "smart"):
                await screenshot(page, view)
