"""Helpers for the dashboard tests: the token, loading the page."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from playwright.async_api import Page, expect

from testkit.gateway import GatewayProcess
from testkit.waiting import WAIT_S

TOKEN = "browser-test-token"

# Playwright's expect() polls until this deadlock guard; nothing is timed.
expect.set_options(timeout=WAIT_S * 1000)


GatewayStarter = Callable[..., Awaitable[GatewayProcess]]


async def open_dashboard(page: Page, base_url: str) -> None:
    """Load the dashboard with the token in its URL and wait until it is live."""
    await page.goto(f"{base_url}/?token={TOKEN}")
    await expect(page.locator("#connection-status")).to_have_attribute("data-state", "live")
    await expect(page.locator("#gallery")).to_have_attribute("aria-busy", "false")
