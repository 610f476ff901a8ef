"""Spanish and English: the browser's language decides, the switch changes it and sticks."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, expect

from testkit.browser import open_dashboard, page_in
from testkit.dashboard_data import Executions, Outcome
from testkit.gateway import GatewayProcess as Gateway

pytestmark = pytest.mark.browser


@pytest.fixture
async def spanish_page(browser: Browser) -> AsyncIterator[Page]:
    """A page in a browser whose preferred language is Spanish (Argentina)."""
    async with page_in(browser, "es-AR") as opened:
        yield opened


async def test_language_follows_the_browser_and_the_switch_sticks(
    spanish_page: Page, gateway: Gateway, executions: Executions
) -> None:
    page = spanish_page
    await executions.add_pending(1201)
    outcome = Outcome(alert_level="high", has_smoke=True, detection_count=3, confidence=0.875)
    await executions.store_completion(1201, outcome)
    await open_dashboard(page, gateway.base_url)

    card = page.locator('#gallery [data-execution-id="1201"]')
    await expect(page.locator("html")).to_have_attribute("lang", "es")
    await expect(page.locator("#connection-status")).to_contain_text("En vivo")
    await expect(card.locator('[data-field="alert"]')).to_have_text("Alto")
    await expect(card.locator('[data-field="detections"]')).to_have_text("3 detecciones")
    await expect(page.locator("#filters")).to_contain_text("Nivel de alerta")
    await expect(page.locator("#shown-count")).to_have_text("1 mostradas")
    await card.locator("button").click()
    # Numbers per locale: a decimal comma in Spanish.
    await expect(page.locator("#detail .detail-fields")).to_contain_text("87,5")
    await page.keyboard.press("Escape")
    # The dialog's close event drops ?execution= from the URL; switching the
    # language before it ran would reload straight back into the detail view.
    await expect(page.locator("#detail")).not_to_have_attribute("open", "")
    await expect(page).not_to_have_url(re.compile(r"[?&]execution="))

    await page.locator("#language").select_option("en")
    await page.wait_for_load_state()
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await expect(card.locator('[data-field="alert"]')).to_have_text("High")
    await expect(card.locator('[data-field="detections"]')).to_have_text("3 detections")

    # The choice sticks across a reload, though the browser still prefers Spanish.
    await page.reload()
    await expect(page.locator("#connection-status")).to_have_attribute("data-state", "live")
    await expect(page.locator("#language")).to_have_value("en")
    await expect(card.locator('[data-field="alert"]')).to_have_text("High")
    await card.locator("button").click()
    await expect(page.locator("#detail .detail-fields")).to_contain_text("87.5")
