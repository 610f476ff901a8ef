"""Helpers for the dashboard tests: the token, signing in, loading the page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from playwright.async_api import Browser, Page, expect

from testkit.waiting import WAIT_S

TOKEN = "browser-test-token"

# Playwright's expect() polls until this deadlock guard; nothing is timed.
expect.set_options(timeout=WAIT_S * 1000)


async def sign_in(page: Page, base_url: str) -> None:
    """Exchange the token for the session cookie, in the page's own cookie jar (what the
    sign-in dialog does; the dialog itself is tested in test_dashboard)."""
    response = await page.context.request.post(f"{base_url}/auth/token", data={"token": TOKEN})
    assert response.ok, await response.text()


async def open_dashboard(page: Page, base_url: str) -> None:
    """Sign in, load the dashboard and wait until it is live."""
    await sign_in(page, base_url)
    await page.goto(f"{base_url}/")
    await expect(page.locator("#connection-status")).to_have_attribute("data-state", "live")
    await expect(page.locator("#gallery")).to_have_attribute("aria-busy", "false")


@asynccontextmanager
async def page_in(browser: Browser, locale: str) -> AsyncIterator[Page]:
    """A fresh page in `locale` (UTC, 1280x900); an uncaught script error in it fails."""
    context = await browser.new_context(
        viewport={"width": 1280, "height": 900}, locale=locale, timezone_id="UTC"
    )
    opened = await context.new_page()
    script_errors: list[str] = []
    opened.on("pageerror", lambda error: script_errors.append(str(error)))
    try:
        yield opened
    finally:
        await context.close()
    assert not script_errors, f"uncaught errors in the dashboard: {script_errors}"
