"""The dashboard in a real browser: Debian's chromium driven by Playwright (async API, in the
test's event loop), against the whole stack in-process (relay, inject-api, logger) and
simulated chargers.

Chromium is ``/usr/bin/chromium`` (``OYE_TEST_CHROMIUM`` to point elsewhere); ``make test``
installs Debian's package when it is missing. Playwright never downloads a browser here.
Every page a test opens records its requests, and the test fails if one left the API's
own origin, if a script threw, or if the console shows an error (a Content-Security-Policy
refusal, say). Screenshots go to ``tests/browser/artifacts/`` (not in git).
"""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    WebSocket,
    async_playwright,
)

from oye_logger.consumer import Progress
from oye_logger.main import run as run_logger
from oye_shared.settings import Settings
from tests.support.relay import service_running
from tests.support.stack import ADMIN_PASSWORD, Stack, stack_running

CHROMIUM = Path(os.environ.get("OYE_TEST_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).parent / "artifacts"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def chromium() -> str:
    """Debian's chromium; the test fails (never skips) without it."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: `make test` installs Debian's chromium "
            "(apt-get install chromium), or set OYE_TEST_CHROMIUM"
        )
    return str(CHROMIUM)


#: One browser per test module (launching Chromium takes seconds); every test gets fresh
#: contexts (cookies, storage) and its own stack. Tests and the async fixtures here run in
#: the module's event loop: mark a module with ``pytest.mark.asyncio(loop_scope="module")``.
LOOP: Final = "module"


@pytest_asyncio.fixture(scope="module", loop_scope=LOOP)
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium(), headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Site(Stack):
    """The stack, and what its logger has stored so far (awaitable)."""

    logged: Progress = field(default_factory=Progress)


@pytest.fixture
def site_settings(settings: Settings) -> Settings:
    """The stack's settings (standalone: no CSMS); a module overrides this fixture to
    change them, e.g. to give the relay a CSMS to forward to."""
    # A test fills the log with a burst of Heartbeats faster than a charger may.
    return settings.model_copy(update={"charger_call_rate": 1000.0})


@pytest_asyncio.fixture(loop_scope=LOOP)
async def site(site_settings: Settings) -> AsyncIterator[Site]:
    """Relay, inject-api and logger, sharing the test's nats-server."""
    logged = Progress()
    async with (
        stack_running(site_settings) as stack,
        service_running(functools.partial(run_logger, progress=logged), site_settings),
    ):
        yield Site(stack.settings, stack.relay, logged)


@dataclass
class Browsing:
    """Opens pages on the stack's API and remembers every URL they requested."""

    browser: Browser
    base_url: str
    requested: list[str] = field(default_factory=list)
    #: Every message the pages received over a WebSocket (the live feed), as text.
    pushed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    contexts: list[BrowserContext] = field(default_factory=list)

    async def page(self, viewport: dict[str, int] | None = None) -> Page:
        """A page in a fresh context (its own cookies), not logged in."""
        context = await self.browser.new_context(
            base_url=self.base_url,
            viewport=viewport or DESKTOP,  # type: ignore[arg-type]
        )
        self.contexts.append(context)
        page = await context.new_page()
        page.on("request", lambda request: self.requested.append(request.url))
        page.on("websocket", self._websocket)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("console", self._console)
        return page

    def _websocket(self, socket: WebSocket) -> None:
        self.requested.append(socket.url)
        socket.on("framereceived", lambda payload: self.pushed.append(str(payload)))

    def _console(self, message: ConsoleMessage) -> None:
        # Answers a test provokes (401, 422) are logged as network errors; anything the
        # Content-Security-Policy refused is a problem.
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.problems.append(f"console: {message.text}")

    def foreign_requests(self) -> list[str]:
        own = urlsplit(self.base_url).netloc
        return [url for url in self.requested if urlsplit(url).netloc != own]


@pytest_asyncio.fixture(loop_scope=LOOP)
async def browsing(browser: Browser, site: Site) -> AsyncIterator[Browsing]:
    """Pages on the stack; afterwards, no request may have left the API's origin and no
    script may have thrown."""
    session = Browsing(browser, site.api_url)
    try:
        yield session
    finally:
        for context in session.contexts:
            await context.close()
    assert not session.foreign_requests(), session.foreign_requests()
    assert not session.problems, session.problems


async def log_in(page: Page, password: str = ADMIN_PASSWORD, user: str = "admin") -> None:
    """Through the login page, as a person would; the dashboard is up when it returns."""
    await page.goto("/")
    await page.wait_for_url("**/login")
    await page.fill("#username", user)
    await page.fill("#password", password)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_url(lambda url: urlsplit(url).path == "/")
    await page.wait_for_selector("body[data-ready=true]")
    await page.wait_for_selector("#live-status[data-state=live]")


@pytest_asyncio.fixture(loop_scope=LOOP)
async def dashboard(browsing: Browsing) -> Page:
    """A logged-in dashboard page with its live feed connected (logged in by a request of
    the page's context, not through the login page, which has its own test)."""
    page = await browsing.page()
    reply = await page.request.post(
        "/login", data={"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert reply.status == 204, await reply.text()
    await page.goto("/")
    await page.wait_for_selector("body[data-ready=true]")
    await page.wait_for_selector("#live-status[data-state=live]")
    return page


Screenshot = Callable[[Page, str], Awaitable[Path]]


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Screenshot:
    """Save a full-page screenshot as tests/browser/artifacts/<test>-<name>.png."""

    async def take(page: Page, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{request.node.name}-{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        return path

    return take
