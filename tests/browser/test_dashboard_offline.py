"""The chargers view with a CSMS behind the relay: open transactions and the offline replay
backlog on a charger's card, live, while the CSMS goes away and comes back."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from playwright.async_api import Page, expect

from oye_cli.simulator import SimulatedCharger
from oye_shared.settings import Settings
from tests.browser.conftest import LOOP, Site
from tests.peers.csms import CsmsServer

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope=LOOP)]

TAG = "TAG-1"


@pytest_asyncio.fixture(loop_scope=LOOP)
async def csms() -> AsyncIterator[CsmsServer]:
    async with CsmsServer(first_transaction_id=500) as server:
        yield server


@pytest.fixture
def site_settings(site_settings: Settings, csms: CsmsServer) -> Settings:
    """The relay forwards to the test's CSMS, and accepts TAG-1 while it is away."""
    return site_settings.model_copy(update={"upstream_url": csms.url, "offline_id_tags": TAG})


async def test_open_transactions_and_the_replay_backlog_show_live_on_the_card(
    site: Site, csms: CsmsServer, dashboard: Page
) -> None:
    """No reload: the CSMS link goes down, the calls the proxy keeps for it are counted,
    the count falls to none once the CSMS is back and has them; a transaction shows while
    it is open."""
    await dashboard.evaluate("window.sameDocument = true")
    card = dashboard.locator('.charger[data-cp="CP-off"]')
    link, backlog = card.locator(".upstream"), card.locator(".backlog")
    transactions = card.locator(".transactions")
    async with SimulatedCharger(site.relay.url("CP-off"), "CP-off", version="1.6") as charger:
        await charger.boot()
        await expect(link).to_have_text("up")
        await expect(backlog).to_have_attribute("data-count", "0")
        await expect(transactions).to_have_attribute("data-count", "0")

        await csms.stop()
        await expect(link).to_have_text("down")
        started = await charger.start_transaction(1, TAG, meter_start=0)
        ours = str(started.transaction_id)
        await charger.meter_values(1, energy_wh=10)
        await expect(backlog).to_have_attribute("data-count", "2")  # the start, the meter values
        await expect(backlog).to_contain_text("2 waiting since")
        await expect(transactions).to_have_attribute("data-count", "1")
        await expect(transactions).to_have_text(f"1 open: {ours}")

        await csms.start()
        await expect(link).to_have_text("up", timeout=10_000)
        await expect(backlog).to_have_attribute("data-count", "0", timeout=10_000)
        await expect(backlog).to_have_text("none")
        await charger.stop_transaction(started.transaction_id, meter_stop=20)
        await expect(transactions).to_have_attribute("data-count", "0")
        await expect(transactions).to_have_text("none open")
    assert await dashboard.evaluate("window.sameDocument") is True  # never reloaded
