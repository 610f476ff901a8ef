"""Browser test fixtures: the real gateway process, headless Debian Chromium, a page.

Chromium is the system's /usr/bin/chromium (`make browser-deps` installs it);
no browser is ever downloaded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.browser.harness import TOKEN, WAIT_S, Gateway, GatewayStarter
from tests.browser.pipeline import Executions
from tests.support.net import free_port, wait_http_ready
from tests.support.processes import ServiceProcess

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    path = tmp_path / "images"
    path.mkdir()
    return path


@pytest.fixture
def start_gateway(
    service_process: Callable[..., ServiceProcess], service_env: dict[str, str], image_dir: Path
) -> GatewayStarter:
    """Factory: await start_gateway(port=None) -> a ready gateway process with a token."""

    async def start(port: int | None = None) -> Gateway:
        port = port or free_port()
        env = {
            **service_env,
            "GATEWAY_PORT": str(port),
            "GATEWAY_TOKEN": TOKEN,
            "IMAGE_DIR": str(image_dir),
        }
        process = service_process(["services.gateway"], env, name=f"gateway:{port}")
        gateway = Gateway(f"http://127.0.0.1:{port}", port, process)
        await wait_http_ready(gateway.url, gateway.process, timeout_s=WAIT_S)
        return gateway

    return start


@pytest.fixture
async def gateway(start_gateway: GatewayStarter) -> Gateway:
    return await start_gateway()


@pytest.fixture
def executions(db_pool: asyncpg.Pool, image_dir: Path) -> Executions:
    return Executions(db_pool, image_dir)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Path]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser-deps`", pytrace=False)
    yield CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS
        )
        yield launched
        await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A fresh page; an uncaught script error in it fails the test."""
    # Fixed locale and zone: the same text (and the same screenshot) on every machine.
    context = await browser.new_context(
        viewport={"width": 1280, "height": 900}, locale="en-GB", timezone_id="UTC"
    )
    opened = await context.new_page()
    script_errors: list[str] = []
    opened.on("pageerror", lambda error: script_errors.append(str(error)))
    yield opened
    await context.close()
    assert not script_errors, f"uncaught errors in the dashboard: {script_errors}"
